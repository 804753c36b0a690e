import { STEPS } from '@flexmig/saga';
import { OtlpReceiver, type ReceivedSpan, waitFor } from '@flexmig/testing';
import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`trace test skipped: ${unavailable}`);

/** The (step, role) pairs the agents run: from the saga's step table, source+target on both. */
const agentSteps = STEPS.flatMap((d) => (d.actor === 'scheduler' ? [] : d.actor === 'source+target' ? ['source', 'target'] : [d.actor]).map((role) => `${d.number}/${role}`));

/**
 * Tracing as built and deployed: the real services export their spans over OTLP/HTTP to a receiver this
 * test runs in memory, and one sim migration must come back as one trace, from the HTTP request through
 * the scheduler's nine steps and NATS to both agents' steps and driver calls, with its CloudEvents on
 * JetStream carrying the same trace context.
 */
describeIf('one migration is one trace (real processes, OTLP)', () => {
  const receiver = new OtlpReceiver();
  let h: Harness;

  beforeAll(async () => {
    await receiver.start();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' };
    h = await new Harness({
      hosts: [
        { id: 'trace-a', cpu: 'Westmere' },
        { id: 'trace-b', cpu: 'Westmere' },
      ],
      scheduler: otel,
      inventory: otel,
      agent: { ...otel, LOG_LEVEL: 'log', LOG_FORMAT: 'json' }, // the agents' step lines, to check their fields
    }).start();
  });

  afterAll(async () => {
    await h?.stop();
    await receiver.stop();
  });

  it('has one traceId across scheduler, inventory and both agents, a span per step, and parents up to the request', async () => {
    const vm = await h.createVm('traced', 'trace-a');
    const requested = await h.migrate(vm.id, 'trace-b');
    const m = await h.waitForEnd(requested.id);
    expect(m.state).toBe('completed');

    const ofMigration = (s: ReceivedSpan) => s.attributes['flexmig.migration_id'] === requested.id;
    // each process's batch processor sends every 100 ms: wait until every step's span of every process is in
    const stepsSeen = () => {
      const mine = receiver.spans.filter(ofMigration);
      return {
        scheduler: new Set(mine.filter((s) => s.service === 'flexmig-scheduler' && /^step \d /.test(s.name)).map((s) => s.attributes['flexmig.step'])),
        agents: new Set(mine.filter((s) => s.service === 'flexmig-agent' && s.name.startsWith('agent step ')).map((s) => `${s.attributes['flexmig.step']}/${s.attributes['flexmig.role']}`)),
      };
    };
    await waitFor('the spans of every step', () => {
      const seen = stepsSeen();
      return seen.scheduler.size === 9 && agentSteps.every((k) => seen.agents.has(k));
    }, { timeoutMs: 15_000 }).catch(() => undefined); // the assertions below say what is missing
    await waitFor('the driver spans', () => receiver.spans.some((s) => s.name.startsWith('driver.') && s.service === 'flexmig-agent'), { timeoutMs: 5_000 });

    const request = receiver.spans.find((s) => s.service === 'flexmig-scheduler' && s.name === 'POST /api/v1/migrations');
    expect(request).toBeDefined();
    const traceId = request!.traceId;
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const byId = new Map(inTrace.map((s) => [s.spanId, s]));
    const chainsToRequest = (s: ReceivedSpan): boolean => {
      for (let at: ReceivedSpan | undefined = s, hops = 0; at && hops < 50; at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined, hops++) {
        if (at.spanId === request!.spanId) return true;
      }
      return false;
    };

    // every span about this migration, from any service, is in the request's trace
    expect(receiver.spans.filter(ofMigration).filter((s) => s.traceId !== traceId)).toEqual([]);
    expect(new Set(inTrace.map((s) => s.service))).toEqual(new Set(['flexmig-scheduler', 'flexmig-inventory', 'flexmig-agent']));

    // the scheduler: one span per step 1–9, each a child of the request span
    const schedulerSteps = inTrace.filter((s) => s.service === 'flexmig-scheduler' && /^step \d /.test(s.name));
    expect(new Set(schedulerSteps.map((s) => s.attributes['flexmig.step']))).toEqual(new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    for (const s of schedulerSteps) expect(s.parentSpanId).toBe(request!.spanId);

    // the agents: each step on its host (source trace-a, target trace-b), chained through NATS to the request
    const agentSpans = inTrace.filter((s) => s.service === 'flexmig-agent' && s.name.startsWith('agent step '));
    expect(new Set(agentSpans.map((s) => `${s.attributes['flexmig.step']}/${s.attributes['flexmig.role']}`))).toEqual(new Set(agentSteps));
    for (const s of agentSpans) {
      expect(s.attributes['flexmig.host_id']).toBe(s.attributes['flexmig.role'] === 'source' ? 'trace-a' : 'trace-b');
      expect(chainsToRequest(s)).toBe(true);
      // its parent is the NATS handler span of the agent, whose parent is the scheduler's request over NATS
      const handler = byId.get(s.parentSpanId!);
      expect(handler?.name).toMatch(/^nats handle /);
      expect(byId.get(handler!.parentSpanId!)?.name).toMatch(/^nats request /);
    }
    // the driver calls are children of the agents' step spans
    const driverSpans = inTrace.filter((s) => s.name.startsWith('driver.'));
    expect(driverSpans.length).toBeGreaterThan(0);
    for (const d of driverSpans) expect(byId.get(d.parentSpanId!)?.name).toMatch(/^agent (step|compensate) /);
    // inventory answered inside the trace (reservation at step 1, relocation at step 9)
    expect(inTrace.some((s) => s.service === 'flexmig-inventory' && s.name.startsWith('nats handle ') && chainsToRequest(s))).toBe(true);

    // the agents' JSON log lines of the steps carry the migration's fields and its trace, as fields
    const target = h.procs.get('trace-b')!.output.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
    expect(target.find((l) => l.context === 'steps' && l.migrationId === requested.id && l.step === 2)).toMatchObject({
      level: 'log',
      service: 'agent',
      vmId: vm.id,
      hostId: 'trace-b',
      stepName: 'transfer-config',
      traceId,
      message: expect.stringContaining('step 2 transfer-config (target) done'),
    });

    // the migration's CloudEvents on JetStream carry the trace (the `traceparent` extension)
    const events = await waitFor('the migration\'s events', async () => {
      const mine = (await h.events('migration.>')).filter((e) => e.subject === requested.id);
      return mine.some((e) => e.type === 'migration.completed') ? mine : undefined;
    });
    expect(events.length).toBeGreaterThan(2);
    for (const e of events) expect(e.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
  });
});
