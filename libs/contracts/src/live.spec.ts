import { LastEventIdSchema, LiveEventsQuerySchema, liveEventTypes, liveTypeSelected, PROGRESS_EVENT_TYPE } from './index';

describe('the live-stream query', () => {
  it('given types and families, then it keeps them; given none, every type', () => {
    expect(LiveEventsQuerySchema.parse({ types: 'host.*, migration.completed,migration.progress' }).types).toEqual(['host.*', 'migration.completed', 'migration.progress']);
    expect(LiveEventsQuerySchema.parse({}).types).toBeUndefined();
    expect(liveEventTypes()).toEqual(expect.arrayContaining(['host.down', 'host.up', 'migration.completed', PROGRESS_EVENT_TYPE]));
  });

  it('given an unknown type or family, then it is refused with the names that exist', () => {
    const r = LiveEventsQuerySchema.safeParse({ types: 'host.exploded,nothing.*' });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].message).toMatch(/unknown event type host\.exploded, nothing\.\*; the types are .*host\.down/);
  });

  it('selects by exact type or family', () => {
    expect(liveTypeSelected(['host.*'], 'host.down')).toBe(true);
    expect(liveTypeSelected(['host.*'], 'vm.started')).toBe(false);
    expect(liveTypeSelected(['migration.completed'], 'migration.failed')).toBe(false);
    expect(liveTypeSelected(undefined, 'vm.started')).toBe(true);
  });

  it('takes a positive integer as Last-Event-ID, or 0 for every event kept', () => {
    expect(LastEventIdSchema.parse('42')).toBe(42);
    expect(LastEventIdSchema.parse('0')).toBe(0);
    for (const bad of ['00', '-1', 'abc', '1.5', '']) expect([bad, LastEventIdSchema.safeParse(bad).success]).toEqual([bad, false]);
  });
});
