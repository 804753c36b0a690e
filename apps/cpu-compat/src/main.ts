import 'reflect-metadata';
import { authSettingsFromEnv, CommonEnvSchema, HttpEnvSchema, loadEnv, port, runMain, natsBusEnv, startService } from '@flexmig/service-kit';
import { CpuCompatModule } from './cpu-compat.module';
import { openApiInfo } from './openapi';

const CpuCompatEnvSchema = CommonEnvSchema.extend(HttpEnvSchema.shape).extend({ PORT: port(3003) });

runMain('cpu-compat', async () => {
  const env = loadEnv(CpuCompatEnvSchema);
  const auth = authSettingsFromEnv(env);
  await startService({
    ...openApiInfo,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    bus: natsBusEnv(env),
    events: false, // publishes no events: its identity may not create the stream
    auth,
    bodyLimitBytes: env.HTTP_BODY_LIMIT,
    module: (bus) => CpuCompatModule.forRoot(bus),
  });
});
