import { STEP_NAMES } from '@flexmig/contracts';
import { type Scenario } from './runner';
import { agentCutFromNatsAt, duplicated, killAt, natsStreamLeaderKilledAt, participants, qemuSetup, restartNatsAt, restartPostgresAt, schedulerCutFromPostgresAt, skewedTakeoverAt, sourceTargetSplitAt, stateDirFull, zombieAt } from './scenarios';

/**
 * The fault matrix (issue 10, item 7): `npm run faults` runs all of it and writes docs/fault-matrix.md.
 * A scenario is one line here; its building blocks are in scenarios.ts, its checks in invariants.ts.
 */
export const matrix: Scenario[] = [
  // kill -9 of each process at each step it takes part in
  ...Object.entries(participants).flatMap(([who, steps]) => steps.map((step) => killAt(who, step))),
  // NATS and PostgreSQL restarted at each step
  ...STEP_NAMES.map(restartNatsAt),
  ...STEP_NAMES.map(restartPostgresAt),
  zombieAt('sync-memory'),
  zombieAt('stop-source'),
  schedulerCutFromPostgresAt('transfer-memory'),
  schedulerCutFromPostgresAt('resume-target'),
  duplicated(500),
  skewedTakeoverAt('transfer-memory'),
  stateDirFull(),
  natsStreamLeaderKilledAt('transfer-memory'),
  // real QEMU (TCG) on both hosts
  killAt('source agent', 'transfer-memory', qemuSetup),
  killAt('source agent', 'sync-memory', qemuSetup),
  killAt('target agent', 'transfer-config', qemuSetup),
  killAt('target agent', 'resume-target', qemuSetup),
  // step 5 is done inside step 4 on qemu (the pause at pre-switchover): the source agent killed right after
  killAt('source agent', 'transfer-state', qemuSetup),
  killAt('scheduler', 'sync-memory', qemuSetup),
  // real QEMU, each agent in a network namespace of its own
  agentCutFromNatsAt('source agent', 'sync-memory', 15_000),
  agentCutFromNatsAt('target agent', 'transfer-memory', 15_000),
  sourceTargetSplitAt('transfer-memory'),
];
