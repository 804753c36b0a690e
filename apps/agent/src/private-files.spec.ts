import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultStateBase, ensurePrivateDir, writePrivateFileAtomic } from './private-files';

describe('private files (the agent state and QEMU run directories)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'fm-private-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults off /tmp: /var/lib/flexmig as root, else $XDG_STATE_HOME/flexmig or ~/.local/state/flexmig', () => {
    expect(defaultStateBase({}, 0)).toBe('/var/lib/flexmig');
    expect(defaultStateBase({ XDG_STATE_HOME: '/home/u/.state' }, 1000)).toBe('/home/u/.state/flexmig');
    expect(defaultStateBase({ XDG_STATE_HOME: 'relative' }, 1000)).toMatch(/\/\.local\/state\/flexmig$/);
  });

  it('creates a directory 0700, and makes an existing one of its own 0700', () => {
    ensurePrivateDir(path.join(dir, 'a', 'b'));
    expect(statSync(path.join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    mkdirSync(path.join(dir, 'open'));
    chmodSync(path.join(dir, 'open'), 0o755);
    ensurePrivateDir(path.join(dir, 'open'));
    expect(statSync(path.join(dir, 'open')).mode & 0o777).toBe(0o700);
  });

  it('refuses a shared (sticky) directory such as /tmp instead of locking it down', () => {
    const before = statSync(tmpdir()).mode;
    expect(() => ensurePrivateDir(tmpdir())).toThrow(/is a shared directory \(mode 1777/);
    expect(statSync(tmpdir()).mode).toBe(before);
  });

  it('writes files 0600, atomically, with no temp file left', () => {
    const f = path.join(dir, 'state.json');
    writePrivateFileAtomic(f, '{"a":1}');
    writePrivateFileAtomic(f, '{"a":2}');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['state.json']);
  });
});
