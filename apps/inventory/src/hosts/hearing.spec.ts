import { Hearing } from './hearing';

/** A NATS connection as Hearing sees it: whether it is up, and its reconnects. */
function connection() {
  const listeners = new Set<() => void>();
  return {
    reachable: true,
    onReconnect(l: () => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    reconnect() {
      this.reachable = true;
      for (const l of listeners) l();
    },
    listeners,
  };
}

describe('Hearing: when a host’s silence is its own', () => {
  const windowMs = 6_000;
  let nats: ReturnType<typeof connection>;
  let hearing: Hearing;
  let started: number;

  beforeEach(() => {
    nats = connection();
    started = Date.now();
    hearing = new Hearing(nats as never, { hostDownAfterMs: windowMs });
  });
  afterEach(() => hearing.onApplicationShutdown());

  it('given a process just started, then it judges no silence before HOST_DOWN_AFTER_MS has passed (beats before the start were not heard)', () => {
    expect(hearing.judges(started)).toBe(false);
    expect(hearing.judges(started + windowMs - 1)).toBe(false);
    expect(hearing.judges(Date.now() + windowMs)).toBe(true);
  });

  it('given NATS disconnected, then it judges nothing, however long', () => {
    nats.reachable = false;
    expect(hearing.judges(started + 100 * windowMs)).toBe(false);
  });

  it('given NATS reconnected, then it judges again only HOST_DOWN_AFTER_MS after the reconnect', () => {
    const later = started + 10 * windowMs;
    expect(hearing.judges(later)).toBe(true);
    nats.reachable = false;
    const now = Date.now();
    nats.reconnect();
    expect(hearing.judges(now + windowMs - 1)).toBe(false);
    expect(hearing.judges(Date.now() + windowMs)).toBe(true);
  });

  it('given heartbeats lost (a write PostgreSQL refused), then HOST_DOWN_AFTER_MS from the last loss, never shortened by an earlier one', () => {
    const at = started + 20 * windowMs;
    hearing.missed(at);
    hearing.missed(at - windowMs); // reported late: does not bring the judging forward
    expect(hearing.judges(at + windowMs - 1)).toBe(false);
    expect(hearing.judges(at + windowMs)).toBe(true);
  });

  it('given the application shutting down, then it stops listening for reconnects', () => {
    expect(nats.listeners.size).toBe(1);
    hearing.onApplicationShutdown();
    expect(nats.listeners.size).toBe(0);
  });
});
