import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { authFiles, credsGrant, initAuthDir } from './auth-dir';
import { rolePermissions } from './permissions';

describe('initAuthDir keeps what it wrote, and issues a service identity again when its permissions changed', () => {
  jest.setTimeout(60_000); // key generation and JWT signing; slow on a loaded 2-core machine
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'fm-auth-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const creds = (role: string) => readFileSync(path.join(dir, authFiles.creds(role)), 'utf8');

  it('given a fresh directory, then every service creds grants exactly its permissions', async () => {
    const r = await initAuthDir(dir, { tls: false });
    for (const role of ['inventory', 'scheduler', 'cpu-compat', 'subscriber'] as const) expect([role, credsGrant(creds(role), rolePermissions(role, r.prefix))]).toEqual([role, true]);
    expect(credsGrant(creds('scheduler'), rolePermissions('inventory', r.prefix))).toBe(false);
  });

  it('given nothing changed, then a second run keeps every creds file as it is', async () => {
    await initAuthDir(dir, { tls: false });
    const before = creds('inventory');
    const again = await initAuthDir(dir, { tls: false });
    expect(creds('inventory')).toBe(before);
    expect(again.written).toEqual([]);
  });

  it('given a service creds of older permissions (here: another role\'s), then it is issued again with the current ones, the rest kept', async () => {
    const r = await initAuthDir(dir, { tls: false });
    const scheduler = creds('scheduler');
    copyFileSync(path.join(dir, authFiles.creds('scheduler')), path.join(dir, authFiles.creds('inventory')));
    const again = await initAuthDir(dir, { tls: false });
    expect(again.written).toEqual([`${authFiles.creds('inventory')} (its permissions changed)`]);
    expect(credsGrant(creds('inventory'), rolePermissions('inventory', r.prefix))).toBe(true);
    expect(creds('scheduler')).toBe(scheduler);
  });

  it('given a file that is no creds, then it does not grant anything', () => {
    expect(credsGrant('garbage', rolePermissions('inventory', 'flexmig'))).toBe(false);
  });
});
