import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { Public } from '@flexmig/service-kit';
import { CONSOLE_CONFIG, type ConsoleConfig } from '../config';
import { WebFiles } from './web-files';

/** What this controller uses of Express's response (the platform is Express; its types are not installed). */
interface ExpressResponse extends ServerResponse {
  status(code: number): this;
  type(contentType: string): this;
  set(header: string, value: string): this;
  send(body: string): void;
  sendFile(path: string, options: { dotfiles: 'deny'; lastModified: boolean; etag: boolean; cacheControl: boolean }): void;
}

/**
 * The web console's client routes (apps/console-web/src/main.tsx): each answers index.html, and the app
 * shows the page. Listed rather than a catch-all, so that /health, /metrics and /api stay their own.
 */
const CLIENT_ROUTES = ['login', 'clusters', 'hosts', 'vms', 'migrations', 'evacuations', 'reconciliation'];

@ApiExcludeController()
@Controller()
export class WebController {
  private readonly files: WebFiles;

  constructor(@Inject(CONSOLE_CONFIG) config: ConsoleConfig) {
    this.files = new WebFiles(config.webRoot);
  }

  @Get(['', 'assets/*path', ...CLIENT_ROUTES.map((r) => `${r}{/*path}`)])
  @Public()
  serve(@Req() req: IncomingMessage & { path: string }, @Res() res: ExpressResponse): void {
    const file = this.files.resolve(req.path);
    if (!file && req.path.startsWith('/assets/')) {
      throw new FlexmigError(ErrorCode.NotFound, `no file ${req.path} in the web console's build; reload the page`, { path: req.path });
    }
    if (!file) {
      res.status(200).type('html').set('cache-control', 'no-cache').send(notBuiltPage(this.files.root));
      return;
    }
    res.set('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    res.set('x-content-type-options', 'nosniff');
    res.sendFile(file.path, { dotfiles: 'deny', lastModified: true, etag: true, cacheControl: false });
  }
}

function notBuiltPage(root: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flexmig</title></head>
<body>
<h1>flexmig</h1>
<p>This is the flexmig console URL (FLEXMIG_URL). The web console is not built here (no index.html in ${escapeHtml(root)}: run <code>npm run build</code>, or set <code>WEB_ROOT</code>); the API is here:</p>
<ul>
<li><a href="/api/v1/openapi.json">/api/v1/openapi.json</a>: the whole API (inventory, scheduler, cpu-compat and the live streams)</li>
<li><code>/api/v1/…</code>: every call, with <code>authorization: Bearer &lt;token&gt;</code> (docs/security.md)</li>
<li><code>/api/v1/events</code>, <code>/api/v1/migrations/:id/events</code>, <code>/api/v1/evacuations/:id/events</code>: live updates (Server-Sent Events)</li>
</ul>
</body></html>
`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
