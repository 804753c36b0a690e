import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { authSettingsFromEnv, loadEnv, natsBusEnv, runMain, startService } from '@flexmig/service-kit';
import { consoleConfig, ConsoleEnvSchema } from './config';
import { ConsoleModule } from './console.module';

runMain('console', async () => {
  const env = loadEnv(ConsoleEnvSchema);
  // the live streams check bearer tokens as the services do (the routed calls are checked by the services)
  const auth = authSettingsFromEnv(env);
  const config = consoleConfig(env);
  await startService({
    name: 'console',
    description: 'One URL for flexmig: /api/v1 routed to the service that owns each path, and live updates (Server-Sent Events).',
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    bus: natsBusEnv(env),
    events: false, // it reads the events stream, which the services create; its identity may not
    queue: null, // it answers no NATS request
    auth,
    bodyLimitBytes: env.HTTP_BODY_LIMIT,
    parseBodies: false, // request bodies stream through to the services
    module: (bus) => ConsoleModule.forRoot({ bus, config }),
  });
  const services = Object.entries(config.services).map(([name, url]) => `${name} ${url}`).join(', ');
  new Logger('console').log(`routing /api/v1 to ${services}`);
});
