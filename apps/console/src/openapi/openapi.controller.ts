import { Controller, Get, Inject } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { mergeOpenApi, type OpenApiDocument, Public } from '@flexmig/service-kit';
import { CONSOLE_CONFIG, type ConsoleConfig, serviceNames, serviceUrlVariable } from '../config';

/**
 * `/api/v1/openapi.json`: the services' documents (`/api/docs-json`, public like this one) and the
 * console's own (its live streams), fetched at each request so that it always matches what runs, merged
 * into one whose paths are all reachable here.
 */
@ApiExcludeController()
@Controller('api/v1')
export class OpenApiController {
  constructor(@Inject(CONSOLE_CONFIG) private readonly config: ConsoleConfig) {}

  @Get('openapi.json')
  @Public()
  async document(): Promise<OpenApiDocument> {
    const sources = [{ service: 'console', url: this.config.selfUrl, variable: 'PORT' }, ...serviceNames.map((s) => ({ service: s, url: this.config.services[s], variable: serviceUrlVariable[s] }))];
    const parts = await Promise.all(sources.map(async (s) => ({ service: s.service, document: await this.fetchDocument(s) })));
    return mergeOpenApi(parts, {
      title: 'flexmig',
      version: parts[1].document.info.version,
      description: 'The whole flexmig API behind one URL (FLEXMIG_URL): inventory, scheduler, cpu-compat, and the live streams of the console.',
    });
  }

  private async fetchDocument(s: { service: string; url: string; variable: string }): Promise<OpenApiDocument> {
    const url = new URL('/api/docs-json', s.url);
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.config.proxyTimeoutMs) });
    } catch (e) {
      throw new FlexmigError(
        ErrorCode.Unavailable,
        `the OpenAPI document of ${s.service} cannot be fetched from ${url} (${(e as Error).message}): check that ${s.service} runs and that ${s.variable} points at it, then retry`,
        { service: s.service, url: url.toString() },
      );
    }
    if (!res.ok) throw new FlexmigError(ErrorCode.Unavailable, `${s.service} answered ${res.status} for its OpenAPI document at ${url}; retry`, { service: s.service, status: res.status });
    return (await res.json()) as OpenApiDocument;
  }
}
