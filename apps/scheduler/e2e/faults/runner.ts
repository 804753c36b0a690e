import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type MigrationView, RelocateVm, ReserveCapacity, type StepName } from '@flexmig/contracts';
import { type Harness, waitFor } from '@flexmig/testing';
import { type Subscription } from '@nats-io/transport-node';
import { FaultHarness, type Driver, type FaultHarnessOptions } from './fault-harness';
import { InvariantChecker, type InvariantResult } from './invariants';

/** A migration under a fault: what a scenario's hooks get. */
export interface FaultContext {
  h: FaultHarness;
  vmId: string;
  migrationId: string;
  /** The hosts of this migration (their agents' process names in the harness). */
  src: string;
  dst: string;
  /** The agents' step commands as the observer saw them, from before the migration was requested. */
  commands: CommandLog;
  /** Waits until the migration runs `step` (its command to an agent is on the wire; for the scheduler's own steps, the API says so); throws when it does not come (the fault would miss its step). */
  reach(step: StepName): Promise<void>;
}

/** A harness configuration that several scenarios share (started once for them, in order). */
export interface Setup extends FaultHarnessOptions {
  name: string;
  /** Put before the ids of its scenarios that a setup of the same driver also has (default: `qemu:` on qemu, none on sim). */
  idPrefix?: string;
  /** Why this setup cannot run on this machine (a binary or a privilege missing), or undefined. */
  unavailable?(): string | undefined;
  /** Before the harness starts (mount a tmpfs), and after it stopped. */
  prepare?(): void;
  teardown?(): void;
  /** Once the harness runs (before the first scenario). */
  afterStart?(h: FaultHarness): Promise<void>;
}

export interface Scenario {
  /** Unique, short, stable: `kill-scheduler@sync-memory`. */
  id: string;
  /** The fault, in words. */
  fault: string;
  /** The step the fault lands in ('—' for faults not tied to one). */
  step: StepName | '—';
  setup: Setup;
  /** Before the migration is requested (src/dst are chosen). */
  before?(c: Omit<FaultContext, 'migrationId' | 'reach' | 'commands'>): Promise<void>;
  /** Breaks something while the migration runs. */
  inject(c: FaultContext): Promise<void>;
  /** Scenario-specific invariants, after the common ones. */
  extra?(c: FaultContext): Promise<InvariantResult[]>;
  /** Undo what the scenario left (a second replica, a stopped process), after the checks. */
  cleanup?(c: FaultContext): Promise<void>;
  /** The migration must be terminal this long after its request (default: 90 s sim, 240 s qemu). */
  deadlineMs?: number;
  /**
   * How long after the migration's end its events may still be on their way to the stream (default 15 s):
   * longer for a fault that leaves JetStream without a leader for a while, the outbox holding them meanwhile.
   */
  eventsSettleMs?: number;
  /** Guest memory (default: 512 MiB sim, 128 MiB qemu). */
  memoryMiB?: number;
}

export interface ScenarioResult {
  id: string;
  fault: string;
  step: string;
  driver: Driver;
  outcome: string;
  timeToTerminalMs?: number;
  invariants: InvariantResult[];
  passed: boolean;
  /** For a failed row only: what the saga and the services did, so that one CI log explains the failure. */
  diagnostics?: string[];
}

/** The invariants that did not hold, as `name: detail` lines. */
export const brokenInvariants = (r: ScenarioResult): string[] => r.invariants.filter((i) => !i.held).map((i) => `${i.name}: ${i.detail}`);

/** Picks the source with fewer VMs, so that VMs spread over both hosts as scenarios go by. */
async function chooseHosts(h: FaultHarness): Promise<[string, string]> {
  const vms = (await h.http('inventory', 'GET', '/api/v1/vms')).body.items ?? [];
  const [a, b] = h.o.hosts.map((x) => x.id);
  const load = (id: string) => vms.filter((v: { hostId: string }) => v.hostId === id).length;
  return load(a) <= load(b) ? [a, b] : [b, a];
}

let vmCounter = 0;

/** The scheduler's own steps, by the request each sends inventory (its body names the migration). */
const schedulerStepRequests: [StepName, string][] = [
  ['verify-compatibility', ReserveCapacity.subject],
  ['commit', RelocateVm.subject],
];

/**
 * The step commands the agents receive, as the harness's observer sees them on the agents' step subject,
 * each with the connection that sent it (a request's reply subject is `<the connection's inbox>.<token>`).
 * `reached(migrationId, step)` resolves the moment the command of a step is on the wire (for the
 * scheduler's own steps, its request to inventory): polling the API cannot catch a step that lasts a few
 * milliseconds (sync-memory of an idle guest, step 1 with its verdict kept), and the command on the wire is
 * the step running, so a fault injected then lands in it. The zombie checks read who sent what (the agents'
 * commands only: `seen`).
 */
export class CommandLog {
  readonly seen: { migrationId: string; stepName: string; key: string; sender: string; at: number }[] = [];
  /** `<migration id> <step name>` of the scheduler's own steps whose request was on the wire. */
  private readonly schedulerStepsSeen = new Set<string>();
  private readonly waiters = new Map<string, () => void>();
  private sub?: Subscription;
  private readonly schedulerSubs: Subscription[] = [];

  start(h: Pick<Harness, 'nc' | 'prefix'>): void {
    for (const [stepName, subject] of schedulerStepRequests) {
      this.schedulerSubs.push(
        h.nc.subscribe(`${h.prefix}.${subject}`, {
          callback: (_e, msg) => {
            let migrationId: string;
            try {
              ({ migrationId } = msg.json<{ migrationId: string }>());
            } catch {
              return; // not a request of ours
            }
            const key = `${migrationId} ${stepName}`;
            this.schedulerStepsSeen.add(key);
            this.waiters.get(key)?.();
          },
        }),
      );
    }
    this.sub = h.nc.subscribe(`${h.prefix}.agent.*.migration.step`, {
      callback: (_e, msg) => {
        let cmd: { migrationId: string; step: number; stepName: string; role: string; attempt: number };
        try {
          cmd = msg.json();
        } catch {
          return; // not a command of ours
        }
        const sender = (msg.reply ?? '?').split('.').slice(0, -1).join('.');
        this.seen.push({ migrationId: cmd.migrationId, stepName: cmd.stepName, key: `step ${cmd.step} ${cmd.role} attempt ${cmd.attempt}`, sender, at: Date.now() });
        this.waiters.get(`${cmd.migrationId} ${cmd.stepName}`)?.();
      },
    });
  }

  /** The commands of one migration, in the order they were seen. */
  of(migrationId: string) {
    return this.seen.filter((s) => s.migrationId === migrationId);
  }

  /** Who sent the last command of a migration before `at`. */
  senderBefore(migrationId: string, at: number): string | undefined {
    return this.of(migrationId)
      .filter((s) => s.at <= at)
      .at(-1)?.sender;
  }

  reached(migrationId: string, step: StepName, timeoutMs = 30_000): Promise<void> {
    const key = `${migrationId} ${step}`;
    if (this.schedulerStepsSeen.has(key) || this.seen.some((s) => s.migrationId === migrationId && s.stepName === step)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${step} command of migration ${migrationId} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(key, () => {
        clearTimeout(timer);
        this.waiters.delete(key);
        resolve();
      });
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const sub of this.schedulerSubs) sub.unsubscribe();
  }
}

/**
 * Runs one scenario on a started harness: a fresh VM, a migration, the fault, then the invariant checks.
 * Never throws for a broken invariant or a fault that missed its step: both are rows of the matrix.
 */
export async function runScenario(h: FaultHarness, s: Scenario): Promise<ScenarioResult> {
  const row = { id: s.id, fault: s.fault, step: s.step, driver: s.setup.driver };
  // up, and heard lately: an agent the last row restarted may still be starting, its host still "up" from
  // before the kill until the liveness sweep (HOST_DOWN_AFTER_MS, 3 s here) marks it down, right into this
  // row's request (once: HOST_DOWN for the target, 127 ms into the row). Heard within 2 s (four beats of
  // 500 ms, each written within 500 ms) is alive; the sweep's 3 s has not run out.
  await waitFor(
    'every host up and heard within the last 2 s before the scenario',
    async () => {
      const hosts: { state: string; lastHeartbeatAt: string }[] = (await h.http('inventory', 'GET', '/api/v1/hosts')).body.items ?? [];
      return hosts.filter((x) => x.state === 'up' && Date.now() - Date.parse(x.lastHeartbeatAt) < 2_000).length === h.o.hosts.length;
    },
    { timeoutMs: 60_000 },
  );
  const [src, dst] = await chooseHosts(h);
  const vm = await h.createVm(`${s.id.replace(/[^a-z0-9-]/gi, '-')}-${++vmCounter}`.slice(0, 60), src, s.memoryMiB ?? (s.setup.driver === 'qemu' ? 128 : 512));
  await s.before?.({ h, vmId: vm.id, src, dst });
  const commands = new CommandLog();
  commands.start(h);
  await h.nc.flush();
  const requestedAt = Date.now();
  const m = await h.migrate(vm.id, dst);
  const c: FaultContext = {
    h,
    vmId: vm.id,
    migrationId: m.id,
    src,
    dst,
    commands,
    reach: (step) => commands.reached(m.id, step),
  };
  const injected: InvariantResult = { name: 'fault landed in its step', held: true, detail: s.step === '—' ? 'in place' : `injected while ${s.step} ran` };
  try {
    await s.inject(c);
  } catch (e) {
    Object.assign(injected, { held: false, detail: (e as Error).message });
  }
  try {
    const end = await new InvariantChecker(h).check({
      migrationId: m.id,
      vmId: vm.id,
      sourceHostId: src,
      targetHostId: dst,
      requestedAt,
      deadlineMs: s.deadlineMs ?? (s.setup.driver === 'qemu' ? 240_000 : 90_000),
      eventsSettleMs: s.eventsSettleMs,
    });
    const invariants = [injected, ...end.invariants, ...((await s.extra?.(c)) ?? [])];
    const passed = invariants.every((i) => i.held);
    return { ...row, outcome: end.outcome, timeToTerminalMs: end.timeToTerminalMs, invariants, passed, ...(passed ? {} : { diagnostics: await diagnose(c, requestedAt) }) };
  } finally {
    commands.stop();
    await s.cleanup?.(c);
  }
}

/** Log lines of each service kept for a failed row (the services log at warn: these are its warnings and errors). */
const diagnosticTailLines = 15;

/**
 * What a failed row needs to be understood from the CI log alone (a row that fails once in many runs cannot
 * be rerun to look): the hosts, every step of the saga with its attempts, errors and compensation, the step
 * commands the agents received and when, and the last lines of the scheduler's and both agents' logs.
 */
async function diagnose(c: FaultContext, requestedAt: number): Promise<string[]> {
  const out = [`migration ${c.migrationId} of VM ${c.vmId}: ${c.src} → ${c.dst}`];
  const view = await c.h.migration(c.migrationId).catch((e: Error) => void out.push(`the migration cannot be read: ${e.message}`));
  for (const st of ((view as MigrationView | undefined)?.steps ?? [])) {
    if (st.status === 'pending' && !st.compensation) continue;
    const error = st.error ? `; ${st.error.code}: ${st.error.message}` : '';
    const comp = st.compensation ? `; compensated by ${st.compensation.name} (attempt ${st.compensation.attempt}${st.compensation.error ? `, ${st.compensation.error.code}: ${st.compensation.error.message}` : ''})` : '';
    out.push(`step ${st.number} ${st.name}: ${st.status} at attempt ${st.attempt}${error}${comp}`.slice(0, 600));
  }
  const commands = c.commands.of(c.migrationId).map((x) => `${x.stepName} ${x.key} +${x.at - requestedAt} ms`);
  if (commands.length) out.push(`commands seen: ${commands.join(', ')}`);
  for (const name of ['scheduler', c.src, c.dst]) {
    const tail = c.h.procs.get(name)?.tail(diagnosticTailLines);
    if (tail) out.push(`${name}'s last log lines:`, ...tail.split('\n').map((l) => `  ${l.slice(0, 500)}`));
  }
  return out;
}

/** Scenarios grouped by setup, in the order they were listed: one harness per group. */
export function bySetup(scenarios: Scenario[]): [Setup, Scenario[]][] {
  const groups = new Map<Setup, Scenario[]>();
  for (const s of scenarios) groups.set(s.setup, [...(groups.get(s.setup) ?? []), s]);
  return [...groups];
}

/**
 * The scenarios whose id matches FAULTS_FILTER (a regular expression), all without it; FAULTS_DRIVER=sim
 * or qemu keeps one driver's. FAULTS_REPEAT=N runs each of them N times in a row, in one harness (a row
 * that failed once in CI is hunted this way, with FLEXMIG_TEST_LOG_DIR keeping every service's log).
 */
export function selectScenarios(all: Scenario[], env = process.env): Scenario[] {
  const filter = env.FAULTS_FILTER ? new RegExp(env.FAULTS_FILTER) : undefined;
  const repeat = env.FAULTS_REPEAT === undefined ? 1 : Number(env.FAULTS_REPEAT);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 100) throw new Error(`FAULTS_REPEAT must be a whole number from 1 to 100, not ${env.FAULTS_REPEAT}`);
  const chosen = all.filter((s) => (!filter || filter.test(s.id)) && (!env.FAULTS_DRIVER || s.setup.driver === env.FAULTS_DRIVER));
  return chosen.flatMap((s) => Array.from({ length: repeat }, () => s));
}

/** Where the matrix's results go (scripts/faults.mjs renders docs/fault-matrix.md from them). */
export const resultsFile = (env = process.env) => path.resolve(env.FAULTS_RESULTS ?? path.join(__dirname, '../../../../dist/faults/results.json'));

export function writeResults(results: ScenarioResult[], file = resultsFile()): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ finishedAt: new Date().toISOString(), results }, null, 2)}\n`);
}

/** A failed row for a scenario that could not run (its setup failed, or the scenario threw). */
const notRun = (s: Scenario, why: string): ScenarioResult => ({
  id: s.id,
  fault: s.fault,
  step: s.step,
  driver: s.setup.driver,
  outcome: 'did not run',
  invariants: [{ name: 'scenario ran', held: false, detail: why }],
  passed: false,
});

/**
 * A Jest suite per setup: the harness started once, each scenario an `it` that fails on a broken
 * invariant. Every scenario gets its row in `results`, also when its setup or the scenario itself failed.
 * A setup this machine cannot run (a binary or a privilege missing) is skipped with a warning, or, with
 * `unavailable: 'fail'` (the whole matrix), each of its scenarios is a failed row that says what is missing.
 */
export function describeScenarios(scenarios: Scenario[], results: ScenarioResult[], o: { unavailable: 'skip' | 'fail' } = { unavailable: 'skip' }): void {
  for (const [setup, list] of bySetup(scenarios)) {
    const why = setup.unavailable?.();
    if (why && o.unavailable === 'fail') {
      describe(`${setup.name} (${setup.driver})`, () => {
        for (const s of list) {
          it(s.id, () => {
            const r = notRun(s, `setup ${setup.name} cannot run on this machine: ${why}`);
            results.push(r);
            expect(brokenInvariants(r)).toEqual([]);
          });
        }
      });
      continue;
    }
    if (why) console.warn(`fault scenarios of setup ${setup.name} skipped: ${why}`);
    (why ? describe.skip : describe)(`${setup.name} (${setup.driver})`, () => {
      const h = new FaultHarness(setup);
      let setupFailed: string | undefined;
      beforeAll(async () => {
        try {
          setup.prepare?.();
          await h.start();
          await setup.afterStart?.(h);
        } catch (e) {
          setupFailed = `setup ${setup.name} failed: ${(e as Error).message}`;
        }
      }, 300_000);
      afterAll(async () => {
        await h.stop();
        setup.teardown?.();
      }, 120_000);
      for (const s of list) {
        it(s.id, async () => {
          const r = setupFailed ? notRun(s, setupFailed) : await runScenario(h, s).catch((e: Error) => notRun(s, `${e.message}`.slice(0, 500)));
          results.push(r);
          if (r.diagnostics) console.log(`${s.id} failed (${r.outcome}):\n${r.diagnostics.join('\n')}`);
          expect(brokenInvariants(r)).toEqual([]);
        }, (s.deadlineMs ?? 240_000) + 180_000);
      }
    });
  }
}
