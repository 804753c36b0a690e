import type { DataSource } from 'typeorm';
import { sleep } from '@flexmig/timing';
import { DbClock } from './db-clock';

/** PostgreSQL's clock, 5 s ahead of this process's; `slowFirst`: the first reading comes at the end of a round trip that long (the pool opening its connection). */
function database(slowFirstMs: number) {
  const offsetMs = 5_000;
  let queries = 0;
  const db = {
    query: async () => {
      queries++;
      if (queries === 1) await sleep(slowFirstMs);
      return [{ t: Date.now() + offsetMs }];
    },
  } as unknown as DataSource;
  return { db, offsetMs, queries: () => queries };
}

describe("DbClock: one clock for every replica, PostgreSQL's", () => {
  it('given a first reading at the end of a slow round trip, then the first sync keeps the best of five, within a few ms of the database', async () => {
    const pg = database(120);
    const clock = new DbClock(pg.db);
    await clock.sync();
    expect(pg.queries()).toBe(5);
    // the slow reading alone would put the clock about 60 ms behind the database's
    expect(Math.abs(clock.now() - (Date.now() + pg.offsetMs))).toBeLessThan(15);
  });

  it('given a synced clock, then each later sync takes one reading', async () => {
    const pg = database(0);
    const clock = new DbClock(pg.db);
    await clock.sync();
    await clock.sync();
    expect(pg.queries()).toBe(6);
    expect(Math.abs(clock.now() - (Date.now() + pg.offsetMs))).toBeLessThan(15);
  });
});
