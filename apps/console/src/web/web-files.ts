import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

export interface WebFile {
  path: string;
  /** A content-hashed asset (`assets/name-HASH.ext`): its URL changes with its content, so it may be cached for good. */
  immutable: boolean;
}

/**
 * Which built file of the web console answers a URL path: the file itself when it exists under the root
 * (never outside it), else index.html (a client route of the single-page app), else none (not built).
 */
export class WebFiles {
  constructor(readonly root: string) {}

  resolve(urlPath: string): WebFile | undefined {
    const index = path.join(this.root, 'index.html');
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      decoded = '/';
    }
    const candidate = path.resolve(this.root, `.${path.posix.normalize(`/${decoded}`)}`);
    const inside = candidate.startsWith(`${path.resolve(this.root)}${path.sep}`);
    if (inside && isFile(candidate)) return { path: candidate, immutable: /^\/assets\/[^/]+-[A-Z0-9]{8,}\.[a-z0-9.]+$/i.test(urlPath) };
    // a missing asset is a 404, not the page (a stale index.html would otherwise load HTML as script)
    if (urlPath.startsWith('/assets/')) return undefined;
    return isFile(index) ? { path: index, immutable: false } : undefined;
  }
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}
