/// <reference types="jest" />
// Jest globals: this helper declares tests (the build compiles it with Node types only).
import type { NatsConnection } from '@nats-io/transport-node';
import { httpJson } from '../infra';
import type { HttpRoute } from '../route-auth';
import { connectObserver, type FuzzContext, type FuzzResults, fuzzHttpRoute, fuzzNatsSubject, fuzzRuns, fuzzSeed, seedsOf, summaryTable, type TargetResult, writeResults } from './runner';
import { FUZZ_HOST_ID, type FuzzApp, FuzzStack } from './stack';
import { type ControllerType, httpTargets, natsTargets } from './targets';

export interface FuzzService {
  app: FuzzApp;
  /** The service's controllers (service-kit's `controllersOfModule` of its root module: nothing is connected). */
  controllers: ControllerType[];
  /** Subject parameters the service subscribes with (the agent: its own host id). */
  subjectParams?: Record<string, string>;
  /** The service's HTTP_BODY_LIMIT (default 256 KiB). */
  bodyLimitBytes?: number;
}

/** What a failure list looks like in an assertion message: one line each. */
const describeFailures = (targets: TargetResult[]) =>
  targets.flatMap((t) => t.failures.map((f) => `${t.target} [${f.category}] ${f.what}: ${f.outcome} ← ${f.input}`));

/**
 * Fuzzes every HTTP route and every NATS subject of the given services (issue 10, item 9), on one stack
 * of real processes, with inputs derived from the zod contracts: valid, boundary, mutated, junk and
 * oversized. The properties: no 5xx and no INTERNAL error reply; every process still answers
 * /health/live after the run; nothing written on a refusal (a snapshot of the services' tables and the
 * agent's state, compared around each refused input). The counts go to dist/fuzz/results.json
 * (FUZZ_RESULTS_DIR) and a table is printed. FUZZ_RUNS sets the inputs per target and category;
 * FUZZ_SEED reproduces a run. `routesOf` is service-kit's: the same route walk as the
 * routes-require-their-role tests.
 */
export function describeFuzz(services: FuzzService[], routesOf: (controller: never) => HttpRoute[]): void {
  // every service runs, whichever are fuzzed: each one's requests reach the others
  const apps: FuzzApp[] = ['cpu-compat', 'inventory', 'scheduler', 'agent', 'console'];
  const results: FuzzResults = { runs: fuzzRuns(), seed: fuzzSeed(), at: new Date().toISOString(), targets: [], health: {} };
  const ceiling = 20 * 60_000; // against hangs only: the run's size is FUZZ_RUNS
  let stack: FuzzStack;
  let nc: NatsConnection;
  let ctx: FuzzContext;

  describe('fuzz: every HTTP route and NATS subject, from the contracts', () => {
    beforeAll(async () => {
      stack = new FuzzStack('all', apps);
      await stack.start(); // assigned first: afterAll stops whatever started, even when the start fails
      nc = await connectObserver(stack);
      const host = await httpJson(stack.urls.inventory!, 'GET', `/api/v1/hosts/${FUZZ_HOST_ID}`);
      const vm = await httpJson(stack.urls.inventory!, 'POST', '/api/v1/vms', { name: 'fuzz-seed', hostId: FUZZ_HOST_ID, memoryMiB: 512, vcpus: 1 });
      if (vm.status !== 201) throw new Error(`could not create the seed VM: ${vm.status} ${JSON.stringify(vm.body)}`);
      ctx = { stack, seeds: seedsOf({ hostIds: [FUZZ_HOST_ID], uuids: [host.body.clusterId, vm.body.id] }), runs: results.runs, seed: results.seed, bodyLimitBytes: 262_144 };
    }, 300_000);

    afterAll(async () => {
      await nc?.close();
      await stack?.stop();
      const file = writeResults(results);
      console.log(`${summaryTable(results)}\nwritten to ${file}`);
    });

    for (const service of services) {
      const http = httpTargets(service.controllers, routesOf).filter((t) => t.access !== 'public');
      const nats = natsTargets(service.controllers);

      describe(service.app, () => {
        it('has routes or subjects to fuzz, each body with the schema it is validated with', () => {
          expect(http.length + nats.length).toBeGreaterThan(0);
          // a route that takes a body validates it with a contract schema (else its body would not be fuzzed from one)
          expect(http.filter((t) => ['POST', 'PUT', 'PATCH'].includes(t.method) && !t.body).map((t) => `${t.method} ${t.path}`)).toEqual([]);
        });

        if (http.length) {
          it('answers no HTTP request with a 5xx, and writes nothing when it refuses one', async () => {
            const mine: TargetResult[] = [];
            const c = { ...ctx, bodyLimitBytes: service.bodyLimitBytes ?? ctx.bodyLimitBytes };
            for (const t of http) mine.push({ ...(await fuzzHttpRoute(c, stack.urls[service.app]!, t)), service: service.app });
            results.targets.push(...mine);
            expect(describeFailures(mine)).toEqual([]);
          }, ceiling);
        }

        if (nats.length) {
          it('answers no NATS request with INTERNAL, and writes nothing when it refuses one', async () => {
            const mine: TargetResult[] = [];
            for (const t of nats) mine.push({ ...(await fuzzNatsSubject(ctx, nc, t, service.subjectParams ?? {})), service: service.app });
            results.targets.push(...mine);
            expect(describeFailures(mine)).toEqual([]);
          }, ceiling);
        }
      });
    }

    describe('after the run', () => {
      it('leaves every process running and answering its health endpoint', async () => {
        results.health = await stack.health();
        expect({ health: results.health, tails: Object.values(results.health).every((s) => s === 200) ? '' : stack.tails() }).toEqual({
          health: Object.fromEntries(apps.map((a) => [a, 200])),
          tails: '',
        });
      });
    });
  });
}
