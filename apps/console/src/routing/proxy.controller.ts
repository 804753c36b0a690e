import { All, Controller, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { Public } from '@flexmig/service-kit';
import { ownerOf, routedCollections } from './route-table';
import { ServiceProxy } from './service-proxy';

/**
 * `/api/v1/*` that is not the console's own: passed on to the service that owns the path. Public here
 * because the owner checks the bearer token and the role of its route; checking here too would be a
 * second verifier with a second set of rules.
 */
@ApiExcludeController()
@Controller('api/v1')
export class ProxyController {
  constructor(private readonly proxy: ServiceProxy) {}

  @All('*path')
  @Public()
  async route(@Req() req: IncomingMessage & { path: string; originalUrl: string }, @Res() res: ServerResponse): Promise<void> {
    const owner = ownerOf(req.path);
    if (!owner) {
      throw new FlexmigError(
        ErrorCode.NotFound,
        `no flexmig service serves ${req.method} ${req.path}: the API is /api/v1/{${routedCollections.join(',')}} and the live streams ` +
          '/api/v1/events and /api/v1/{migrations,evacuations}/:id/events; the document of all of it is /api/v1/openapi.json',
        { path: req.path },
      );
    }
    await this.proxy.forward(owner, req, res);
  }
}
