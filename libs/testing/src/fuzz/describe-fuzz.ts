/// <reference types="jest" />
// Jest globals: this helper declares tests (the build compiles it with Node types only).
import type { NatsConnection } from '@nats-io/transport-node';
import { httpJson } from '../infra';
import type { HttpRoute } from '../route-auth';
import { connectObserver, type FuzzContext, type FuzzResults, fuzzHttpRoute, fuzzNatsSubject, fuzzRuns, fuzzSeed, seedsOf, summaryTable, type TargetResult, writeResults } from './runner';
import { FUZZ_HOST_ID, type FuzzApp, FuzzStack } from './stack';
import { type ControllerType, httpTargets, natsTargets } from './targets';

export interface FuzzSpec {
  /** The service's controllers (service-kit's `controllersOfModule` of its root module: nothing is connected). */
  controllers: ControllerType[];
  /** service-kit's `routesOf`: the same route walk as the routes-require-their-role tests. */
  routesOf: (controller: never) => HttpRoute[];
  /** The processes to run beside it (the service itself included). */
  stack: FuzzApp[];
  /** Subject parameters the service subscribes with (the agent: its own host id). */
  subjectParams?: Record<string, string>;
  /** The service's HTTP_BODY_LIMIT (default 256 KiB). */
  bodyLimitBytes?: number;
}

/** What a failure list looks like in an assertion message: one line each. */
const describeFailures = (targets: TargetResult[]) =>
  targets.flatMap((t) => t.failures.map((f) => `${t.target} [${f.category}] ${f.what}: ${f.outcome} ← ${f.input}`));

/**
 * Fuzzes every HTTP route and every NATS subject of one service (issue 10, item 9), with inputs derived
 * from the zod contracts: valid, boundary, mutated, junk and oversized. The properties: no 5xx and no
 * INTERNAL error reply; every process still answers /health/live after the run; nothing written on a
 * refusal (a snapshot of the services' tables and the agent's state, compared around each refused input).
 * The counts go to dist/fuzz/<service>.json (FUZZ_RESULTS_DIR) and a table is printed.
 * FUZZ_RUNS sets the inputs per target and category; FUZZ_SEED reproduces a run.
 */
export function describeFuzz(service: FuzzApp, spec: FuzzSpec): void {
  const http = httpTargets(spec.controllers, spec.routesOf).filter((t) => t.access !== 'public');
  const nats = natsTargets(spec.controllers);
  const results: FuzzResults = { service, runs: fuzzRuns(), seed: fuzzSeed(), at: new Date().toISOString(), targets: [], health: {} };
  const ceiling = 20 * 60_000; // against hangs only: the run's size is FUZZ_RUNS

  describe(`fuzz ${service}: every HTTP route and NATS subject`, () => {
    let stack: FuzzStack;
    let nc: NatsConnection;
    let ctx: FuzzContext;

    beforeAll(async () => {
      stack = await new FuzzStack(service.replace(/-/g, '_'), spec.stack).start();
      nc = await connectObserver(stack);
      const uuids: string[] = [];
      if (stack.urls.inventory && spec.stack.includes('agent')) {
        const host = await httpJson(stack.urls.inventory, 'GET', `/api/v1/hosts/${FUZZ_HOST_ID}`);
        const vm = await httpJson(stack.urls.inventory, 'POST', '/api/v1/vms', { name: 'fuzz-seed', hostId: FUZZ_HOST_ID, memoryMiB: 512, vcpus: 1 });
        if (vm.status !== 201) throw new Error(`could not create the seed VM: ${vm.status} ${JSON.stringify(vm.body)}`);
        uuids.push(host.body.clusterId, vm.body.id);
      }
      ctx = { stack, seeds: seedsOf({ hostIds: [FUZZ_HOST_ID], uuids }), runs: results.runs, seed: results.seed, bodyLimitBytes: spec.bodyLimitBytes ?? 262_144 };
    }, 120_000);

    afterAll(async () => {
      await nc?.close();
      await stack?.stop();
      const file = writeResults(results);
      console.log(`${summaryTable(results)}\nwritten to ${file}`);
    });

    it('finds routes and subjects to fuzz, each with the schemas of its inputs', () => {
      expect(http.length + nats.length).toBeGreaterThan(0);
      // a route that takes a body validates it with a contract schema (else its body would not be fuzzed from one)
      expect(http.filter((t) => ['POST', 'PUT', 'PATCH'].includes(t.method) && !t.body).map((t) => `${t.method} ${t.path}`)).toEqual([]);
    });

    if (http.length) {
      it('answers no HTTP request with a 5xx, and writes nothing when it refuses one', async () => {
        const base = stack.urls[service]!;
        const mine: TargetResult[] = [];
        for (const t of http) mine.push(await fuzzHttpRoute(ctx, base, t));
        results.targets.push(...mine);
        expect(describeFailures(mine)).toEqual([]);
      }, ceiling);
    }

    if (nats.length) {
      it('answers no NATS request with INTERNAL, and writes nothing when it refuses one', async () => {
        const mine: TargetResult[] = [];
        for (const t of nats) mine.push(await fuzzNatsSubject(ctx, nc, t, spec.subjectParams ?? {}));
        results.targets.push(...mine);
        expect(describeFailures(mine)).toEqual([]);
      }, ceiling);
    }

    it('leaves every process running and answering its health endpoint', async () => {
      results.health = await stack.health();
      expect({ health: results.health, tails: Object.values(results.health).every((s) => s === 200) ? '' : stack.tails() }).toEqual({
        health: Object.fromEntries(spec.stack.map((a) => [a, 200])),
        tails: '',
      });
    });
  });
}
