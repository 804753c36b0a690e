import { register } from 'prom-client';
import type { DataSource } from 'typeorm';
import type { NatsBus } from '@flexmig/messaging';
import type { EventOutbox } from '../events/event-outbox';
import type { InventoryConfig } from '../config';
import { ReconciliationService } from './reconciliation.service';

const passes = async () =>
  Object.fromEntries(((await register.getSingleMetric('flexmig_reconciliation_passes_total')?.get())?.values ?? []).map((v) => [v.labels.result, v.value]));
const timedPasses = async () =>
  (await register.getSingleMetric('flexmig_reconciliation_pass_duration_seconds')?.get())?.values.find((v) => 'metricName' in v && String(v.metricName).endsWith('_count'))?.value;

describe('reconciliation: each pass counted, by result', () => {
  it('given the ok and failed series before any pass, then both exist at 0 (an alert on "no ok pass" has its series)', async () => {
    expect(await passes()).toEqual({ ok: 0, failed: 0 });
  });

  it('given a pass whose database is away, then it rejects with the database error, counted failed and not timed', async () => {
    const db = { query: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')) } as unknown as DataSource;
    const service = new ReconciliationService(db, {} as NatsBus, {} as EventOutbox, { reconcileIntervalMs: 10_000 } as InventoryConfig);
    await expect(service.pass()).rejects.toThrow('ECONNREFUSED');
    await expect(service.pass()).rejects.toThrow('ECONNREFUSED');
    expect(await passes()).toEqual({ ok: 0, failed: 2 });
    expect(await timedPasses()).toBe(0);
  });
});
