import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { FlexmigError, ErrorCode } from '@flexmig/contracts';
import { credsUserName } from '@flexmig/messaging';
import { loadEnv, runMain, natsBusEnv, startService } from '@flexmig/service-kit';
import { AgentEnvSchema } from './config';
import { AgentModule } from './agent.module';
import { createDriver } from './drivers/create-driver';
import { HostPresenceService } from './host-presence.service';

runMain('agent', async () => {
  const env = loadEnv(AgentEnvSchema);
  if (process.env.HOST_ID && process.env.HOST_ID !== env.HOST_ID) {
    console.log(`agent: HOST_ID ${process.env.HOST_ID} is used as ${env.HOST_ID} (a host id is a NATS subject token: no dots or capitals)`);
  }
  // an agent's identity is named after its host: another host's would be refused every subject it needs
  const identity = env.NATS_CREDS ? credsUserName(readFileSync(env.NATS_CREDS, 'utf8')) : undefined;
  if (identity !== undefined && identity !== env.HOST_ID) {
    throw new FlexmigError(
      ErrorCode.ValidationFailed,
      `NATS_CREDS ${env.NATS_CREDS} is the identity of ${identity}, not of host ${env.HOST_ID}: issue this host its own (npx flexmig auth agent ${env.HOST_ID})`,
    );
  }
  const driver = createDriver(env);
  const service = await startService({
    name: 'agent',
    description: `flexmig agent of host ${env.HOST_ID} (${env.DRIVER} driver): /health and /metrics; commands arrive over NATS.`,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    bus: natsBusEnv(env),
    events: false, // publishes no events: its identity may not create the stream
    subjectParams: { hostId: env.HOST_ID },
    queue: null,
    openApi: false,
    module: (bus) => AgentModule.forRoot({ bus, env, driver }),
  });
  await service.app.get(HostPresenceService).begin();
});
