import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { Public } from '@flexmig/service-kit';

/**
 * `/`: where the web console's built files are served (issue 13, part 4). Until it is built this page
 * says what this URL serves, so that an operator who opens FLEXMIG_URL in a browser is not left at a 404.
 */
@ApiExcludeController()
@Controller()
export class WebController {
  @Get()
  @Public()
  @Header('content-type', 'text/html; charset=utf-8')
  index(): string {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flexmig</title></head>
<body>
<h1>flexmig</h1>
<p>This is the flexmig console URL (FLEXMIG_URL). The web console is not part of this build yet; the API is here:</p>
<ul>
<li><a href="/api/v1/openapi.json">/api/v1/openapi.json</a>: the whole API (inventory, scheduler, cpu-compat and the live streams)</li>
<li><code>/api/v1/…</code>: every call, with <code>authorization: Bearer &lt;token&gt;</code> (docs/security.md)</li>
<li><code>/api/v1/events</code>, <code>/api/v1/migrations/:id/events</code>, <code>/api/v1/evacuations/:id/events</code>: live updates (Server-Sent Events)</li>
</ul>
</body></html>
`;
  }
}
