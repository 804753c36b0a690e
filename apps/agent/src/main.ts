import 'reflect-metadata';
import { loadEnv, runMain, startService } from '@flexmig/service-kit';
import { AgentEnvSchema } from './config';
import { AgentModule } from './agent.module';
import { createDriver } from './drivers/create-driver';
import { HostPresenceService } from './host-presence.service';

runMain('agent', async () => {
  const env = loadEnv(AgentEnvSchema);
  if (process.env.HOST_ID && process.env.HOST_ID !== env.HOST_ID) {
    console.log(`agent: HOST_ID ${process.env.HOST_ID} is used as ${env.HOST_ID} (a host id is a NATS subject token: no dots or capitals)`);
  }
  const driver = createDriver(env);
  const service = await startService({
    name: 'agent',
    description: `flexmig agent of host ${env.HOST_ID} (${env.DRIVER} driver): /health and /metrics; commands arrive over NATS.`,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    bus: { url: env.NATS_URL, prefix: env.SUBJECT_PREFIX },
    subjectParams: { hostId: env.HOST_ID },
    queue: null,
    openApi: false,
    module: (bus) => AgentModule.forRoot({ bus, env, driver }),
  });
  await service.app.get(HostPresenceService).begin();
});
