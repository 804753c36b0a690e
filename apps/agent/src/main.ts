import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { FlexmigError, ErrorCode } from '@flexmig/contracts';
import { credsUserName } from '@flexmig/messaging';
import { loadEnv, runMain } from '@flexmig/service-kit';
import { AgentEnvSchema, defaultIdentityTokenFile } from './config';
import { createDriver } from './drivers/create-driver';
import { HostPresenceService } from './host-presence.service';
import { obtainAgentIdentity } from './identity';
import { startAgentService } from './start-agent';

runMain('agent', async () => {
  const env = loadEnv(AgentEnvSchema);
  if (process.env.HOST_ID && process.env.HOST_ID !== env.HOST_ID) {
    console.log(`agent: HOST_ID ${process.env.HOST_ID} is used as ${env.HOST_ID} (a host id is a NATS subject token: no dots or capitals)`);
  }
  if (env.IDENTITY_ISSUER_URL) {
    if (env.NATS_CREDS) throw new FlexmigError(ErrorCode.ValidationFailed, 'set NATS_CREDS or IDENTITY_ISSUER_URL, not both: the issuer makes the creds');
    env.NATS_CREDS = await obtainAgentIdentity({ issuerUrl: env.IDENTITY_ISSUER_URL, tokenFile: env.IDENTITY_TOKEN_FILE ?? defaultIdentityTokenFile, hostId: env.HOST_ID });
  }
  // an agent's identity is named after its host: another host's would be refused every subject it needs
  const identity = env.NATS_CREDS ? credsUserName(readFileSync(env.NATS_CREDS, 'utf8')) : undefined;
  if (identity !== undefined && identity !== env.HOST_ID) {
    throw new FlexmigError(
      ErrorCode.ValidationFailed,
      `NATS_CREDS ${env.NATS_CREDS} is the identity of ${identity}, not of host ${env.HOST_ID}: issue this host its own (npx flexmig auth agent ${env.HOST_ID})`,
    );
  }
  const service = await startAgentService(env, createDriver(env));
  await service.app.get(HostPresenceService).begin();
});
