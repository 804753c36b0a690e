import { Hearing, massSilence } from './hearing';

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

describe('massSilence: when many hosts silent at once are not marked down', () => {
  const rule = { share: 0.55, minHosts: 3 };

  it('given one host of a thousand silent, the others heard, then it is marked down', () => {
    expect(massSilence({ up: 1_000, quiet: 1, silent: 1 }, rule)).toBe(false);
  });

  it('given a silent partition: a third of the fleet silent at the first sweep, every host quiet, then none is marked down', () => {
    // the hosts whose last beat came earliest cross HOST_DOWN_AFTER_MS first; the rest are past half of it
    expect(massSilence({ up: 1_000, quiet: 1_000, silent: 330 }, rule)).toBe(true);
  });

  it('given quiet hosts at the share exactly, then it holds; one fewer, then it marks down', () => {
    expect(massSilence({ up: 100, quiet: 55, silent: 10 }, rule)).toBe(true);
    expect(massSilence({ up: 100, quiet: 54, silent: 10 }, rule)).toBe(false);
  });

  it('given a small fleet, then fewer than HOST_MASS_SILENCE_MIN hosts never hold, whatever their share', () => {
    expect(massSilence({ up: 2, quiet: 2, silent: 2 }, rule)).toBe(false);
    expect(massSilence({ up: 3, quiet: 3, silent: 1 }, rule)).toBe(true);
  });

  it('given no silent host, then there is nothing to hold, however many are quiet (beats late under load)', () => {
    expect(massSilence({ up: 1_000, quiet: 900, silent: 0 }, rule)).toBe(false);
  });

  it('given HOST_MASS_SILENCE_MIN=0, then the guard is off: every silent host is marked down', () => {
    expect(massSilence({ up: 1_000, quiet: 1_000, silent: 1_000 }, { share: 0.55, minHosts: 0 })).toBe(false);
  });

  it('given a share of 1, then only a fleet entirely quiet holds', () => {
    expect(massSilence({ up: 10, quiet: 10, silent: 3 }, { share: 1, minHosts: 3 })).toBe(true);
    expect(massSilence({ up: 10, quiet: 9, silent: 9 }, { share: 1, minHosts: 3 })).toBe(false);
  });
});
