import type { OpenApiInfo } from '@flexmig/service-kit';
import { CpuCompatModule } from './cpu-compat.module';

/** What cpu-compat's OpenAPI document says of it (main.ts, the document tests and docs/openapi.json). */
export const openApiInfo: OpenApiInfo = {
  name: 'cpu-compat',
  description: 'The CPU model catalog, host evaluation, migration verdicts, CPUID masks and cluster planning. Stateless.',
};

/** cpu-compat's module definition with nothing connected: its routes, for a preview app's document and the route tests. */
export const routesModule = () => CpuCompatModule.forRoot(undefined as never);
