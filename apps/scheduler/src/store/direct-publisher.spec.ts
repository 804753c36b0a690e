import { randomUUID } from 'node:crypto';
import type { NatsBus } from '@flexmig/messaging';
import { DirectPublisher } from './direct-publisher';

/**
 * What the relay must leave to the DirectPublisher (`held`), through an event's life here: handed over,
 * acknowledged by JetStream, taken by a statement that deletes its row, that statement committed (or failed).
 * An event whose row's deletion is not committed yet is still held: a relay reading the outbox meanwhile
 * would see the row and publish the event a second time (the terminal events seen twice under load).
 */
describe('DirectPublisher: what the relay leaves alone', () => {
  const published: string[] = [];
  const bus = { publishEvent: async (_c: unknown, _d: unknown, o: { id: string }) => void published.push(o.id) } as unknown as NatsBus;
  const migrationId = randomUUID();
  const row = (n: number) => ({
    event_id: `${migrationId}:step-completed:${n}`,
    type: 'migration.step-completed',
    subject: migrationId,
    data: { migrationId, vmId: migrationId, step: n, stepName: 'verify-compatibility', attempt: 1, durationMs: 1 },
  });
  const settle = () => new Promise((r) => setImmediate(r));

  it('given an event taken by a statement that deletes its row, then it stays held until that statement committed', async () => {
    const direct = new DirectPublisher(bus);
    direct.adopt(migrationId);
    direct.publish({ migrationId, rows: [row(1)], at: new Date(), last: true });
    // handed over: held while it is sent, and its migration's rows with it
    expect(direct.held()).toEqual({ events: [row(1).event_id], migrations: [migrationId] });
    await settle();
    expect(published).toEqual([row(1).event_id]);
    // acknowledged, the migration ended: the event itself is still held until its row is gone
    expect(direct.held()).toEqual({ events: [row(1).event_id], migrations: [] });
    let release!: () => void;
    const statement = direct.deletingAcknowledged(async (ids) => {
      expect(ids).toEqual([row(1).event_id]);
      await new Promise<void>((r) => (release = r));
      return 'committed';
    });
    // a second statement meanwhile does not take it again
    await expect(direct.deletingAcknowledged(async (ids) => ids)).resolves.toEqual([]);
    expect(direct.held().events).toEqual([row(1).event_id]);
    release();
    await expect(statement).resolves.toBe('committed');
    expect(direct.held().events).toEqual([]);
    await expect(direct.deletingAcknowledged(async (ids) => ids)).resolves.toEqual([]);
  });

  it('given the deleting statement failed, then the event is given back: held, and taken by the next statement', async () => {
    const direct = new DirectPublisher(bus);
    direct.adopt(migrationId);
    direct.publish({ migrationId, rows: [row(2)], at: new Date(), last: true });
    await settle();
    await expect(
      direct.deletingAcknowledged(async () => {
        throw new Error('connection lost');
      }),
    ).rejects.toThrow('connection lost');
    expect(direct.held().events).toEqual([row(2).event_id]);
    await expect(direct.deletingAcknowledged(async (ids) => ids)).resolves.toEqual([row(2).event_id]);
    expect(direct.held().events).toEqual([]);
  });
});
