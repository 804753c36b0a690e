import { spawnSync } from 'node:child_process';
import { applyServiceV8Flags, SERVICE_V8_FLAGS } from './bootstrap';

describe("the V8 flags every service's main sets", () => {
  it('are set, each once, in order', () => {
    const set = jest.fn();
    applyServiceV8Flags(set);
    expect(set.mock.calls).toEqual(SERVICE_V8_FLAGS.map((f) => [f]));
    expect(SERVICE_V8_FLAGS).toContain('--no-allocation-site-pretenuring');
  });

  // setFlagsFromString ignores a flag V8 does not know; the command line refuses it ("bad option"), so a
  // Node upgrade that drops one fails here instead of silently running the services without it
  it.each(SERVICE_V8_FLAGS)('%s is a flag this Node knows', (flag) => {
    const r = spawnSync(process.execPath, [flag, '-e', '0'], { encoding: 'utf8' });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const bad = spawnSync(process.execPath, [`${flag}-not-a-flag`, '-e', '0'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
  });
});
