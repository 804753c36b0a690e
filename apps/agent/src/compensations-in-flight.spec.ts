import { randomUUID } from 'node:crypto';
import type { StepRecord } from '@flexmig/contracts';
import { CompensationsInFlight } from './compensations-in-flight';

/** Through MigrationStepsService (the records marked, the copy destroyed once): switchover-in-one.spec. */
describe('CompensationsInFlight: a compensation sent again while it runs joins it', () => {
  const migrationId = randomUUID();
  const of = (step: number, role: 'source' | 'target' = 'source') => ({ migrationId, step, role });
  const record = (step: number, role: 'source' | 'target' = 'source'): StepRecord => ({ step: step as StepRecord['step'], role, attempt: 1, status: 'completed' });

  it('a second call while the first runs gets the same outcome, and the undo runs once', async () => {
    const inFlight = new CompensationsInFlight<string>();
    let runs = 0;
    let finish: (v: string) => void = () => undefined;
    const undo = () => {
      runs++;
      return new Promise<string>((resolve) => (finish = resolve));
    };
    const first = inFlight.run(of(5), undo);
    const second = inFlight.run(of(5), undo);
    finish('VM resumed on the source');
    await expect(Promise.all([first, second])).resolves.toEqual(['VM resumed on the source', 'VM resumed on the source']);
    expect(runs).toBe(1);
  });

  it('once it ended, ok or not, the next call runs the undo again (compensations are idempotent)', async () => {
    const inFlight = new CompensationsInFlight<string>();
    await expect(inFlight.run(of(5), () => Promise.reject(new Error('QMP cont failed')))).rejects.toThrow('QMP cont failed');
    await expect(inFlight.run(of(5), async () => 'VM resumed on the source')).resolves.toBe('VM resumed on the source');
  });

  it("another step's or role's compensation is not joined", async () => {
    const inFlight = new CompensationsInFlight<string>();
    const never = inFlight.run(of(6, 'target'), () => new Promise<string>(() => undefined));
    await expect(inFlight.run(of(6, 'source'), async () => 'source')).resolves.toBe('source');
    await expect(inFlight.run(of(5, 'source'), async () => 'five')).resolves.toBe('five');
    void never;
  });

  it('mark: the step whose compensation runs now says so in the records, and only while it runs', async () => {
    const inFlight = new CompensationsInFlight<string>();
    let finish: (v: string) => void = () => undefined;
    const running = inFlight.run(of(6, 'target'), () => new Promise<string>((resolve) => (finish = resolve)));
    const records = [record(5), record(6, 'source'), record(6, 'target')];
    expect(inFlight.mark(migrationId, records)).toEqual([record(5), record(6, 'source'), { ...record(6, 'target'), compensating: true }]);
    expect(inFlight.mark(randomUUID(), records)).toEqual(records);
    finish('target copy destroyed');
    await running;
    expect(inFlight.mark(migrationId, records)).toEqual(records);
  });
});
