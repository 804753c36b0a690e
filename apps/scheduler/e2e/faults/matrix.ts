import { STEP_NAMES } from '@flexmig/contracts';
import { type Scenario } from './runner';
import { agentCutFromNatsAt, duplicated, killAt, lostCompensationAt, natsStreamLeaderKilledAt, participants, qemuSetup, restartNatsAt, restartPostgresAt, schedulerCutFromPostgresAt, simSwitchoverAsQemuSetup, skewedTakeoverAt, sourceTargetSplitAt, stateDirFull, zombieAt } from './scenarios';

/**
 * The fault matrix (issue 10, item 7): `npm run faults` runs all of it and writes docs/fault-matrix.md.
 * A scenario is one line here; its building blocks are in scenarios.ts, its checks in invariants.ts.
 */
export const matrix: Scenario[] = [
  // kill -9 of each process at each step it takes part in
  ...Object.entries(participants).flatMap(([who, steps]) => steps.map((step) => killAt(who, step))),
  // NATS and PostgreSQL restarted at each step
  ...STEP_NAMES.map((step) => restartNatsAt(step)),
  ...STEP_NAMES.map((step) => restartPostgresAt(step)),
  zombieAt('sync-memory'),
  zombieAt('stop-source'),
  schedulerCutFromPostgresAt('transfer-memory'),
  schedulerCutFromPostgresAt('resume-target'),
  duplicated(500),
  lostCompensationAt('transfer-memory'),
  skewedTakeoverAt('transfer-memory'),
  stateDirFull(),
  natsStreamLeaderKilledAt('transfer-memory'),
  // the sim switching over as qemu (step 5 inside 4, step 7 inside 6): step 6 may start the guest on the target,
  // so a fault in it ends forward (the target resumed) or rolled back (it answered that its copy never ran)
  ...(['scheduler', 'source agent', 'target agent'] as const).map((who) => killAt(who, 'transfer-state', simSwitchoverAsQemuSetup)),
  killAt('source agent', 'sync-memory', simSwitchoverAsQemuSetup),
  restartNatsAt('transfer-state', simSwitchoverAsQemuSetup),
  restartPostgresAt('transfer-state', simSwitchoverAsQemuSetup),
  // real QEMU (TCG) on both hosts. A guest whose memory fits the downtime budget after its first pass (these
  // do) reaches the switchover inside step 3, and steps 4 and 5 are done with it: no command of step 4 is sent,
  // so the faults that landed there land as step 6 goes out, right after steps 3–5 were committed together
  killAt('source agent', 'transfer-memory', qemuSetup),
  killAt('target agent', 'transfer-config', qemuSetup),
  // step 7 is done inside step 6 on qemu (cont as soon as the state loaded): the target agent killed in it
  killAt('target agent', 'transfer-state', qemuSetup),
  // the guest paused at pre-switchover inside step 3: the source agent killed right after
  killAt('source agent', 'transfer-state', qemuSetup),
  killAt('scheduler', 'transfer-state', qemuSetup),
  // real QEMU, each agent in a network namespace of its own
  agentCutFromNatsAt('source agent', 'transfer-state', 15_000),
  agentCutFromNatsAt('target agent', 'transfer-memory', 15_000),
  sourceTargetSplitAt('transfer-memory'),
];
