/**
 * At most `limit` calls of `run` at once; the others wait their turn, first come first served. For a
 * caller that would otherwise send a burst a server cannot answer in time (a fleet of simulated hosts
 * registering together), whose timeouts and retries would only add to the burst.
 */
export class Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a gate lets at least 1 through at once, got ${limit}`);
  }

  /** Calls waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((turn) => this.waiting.push(turn));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // the slot passes straight to the next in line, so a newcomer cannot take it in between
      if (next) next();
      else this.running--;
    }
  }
}
