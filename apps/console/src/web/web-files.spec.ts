import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebFiles } from './web-files';

describe('WebFiles: which built file answers a path', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'flexmig-web-files-'));
  const outside = `${root}-secret.txt`;
  beforeAll(() => {
    mkdirSync(path.join(root, 'assets'));
    writeFileSync(path.join(root, 'index.html'), '<!doctype html>');
    writeFileSync(path.join(root, 'assets/main-AB12CD34.js'), '');
    writeFileSync(path.join(root, 'assets/main-AB12CD34.js.map'), '');
    writeFileSync(path.join(root, 'assets/LICENSE.txt'), '');
    writeFileSync(outside, 'secret');
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { force: true });
  });
  const files = new WebFiles(root);

  it('given a content-hashed asset, then that file, cacheable for good; an unhashed one is not', () => {
    expect(files.resolve('/assets/main-AB12CD34.js')).toEqual({ path: path.join(root, 'assets/main-AB12CD34.js'), immutable: true });
    expect(files.resolve('/assets/main-AB12CD34.js.map')?.immutable).toBe(true);
    expect(files.resolve('/assets/LICENSE.txt')).toEqual({ path: path.join(root, 'assets/LICENSE.txt'), immutable: false });
  });

  it('given / or a client route, then index.html, never cached for good', () => {
    for (const p of ['/', '/migrations/8c4a', '/hosts']) expect(files.resolve(p)).toEqual({ path: path.join(root, 'index.html'), immutable: false });
  });

  it('given a missing asset, then nothing (a 404), not index.html', () => {
    expect(files.resolve('/assets/main-OLDHASH1.js')).toBeUndefined();
  });

  it('given a path that climbs out of the root, plain or encoded, then never a file outside it', () => {
    const name = path.basename(outside);
    for (const p of [`/../${name}`, `/assets/../../${name}`, `/%2e%2e/${name}`, `/..%2f${name}`, '/%zz']) {
      // index.html (a client route), or nothing (under /assets/): never the file outside
      const hit = files.resolve(p);
      expect([p, hit === undefined || hit.path === path.join(root, 'index.html')]).toEqual([p, true]);
    }
  });

  it('given a root without index.html (not built), then nothing for a client route', () => {
    expect(new WebFiles(path.join(root, 'assets')).resolve('/hosts')).toBeUndefined();
  });
});
