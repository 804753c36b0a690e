import { readFileSync } from 'node:fs';
import { agentIdentityBodyLimit, agentIdentityRoute } from '@flexmig/contracts';
import { publicKey } from '@flexmig/nats-auth';
import { loadEnv, runMain } from '@flexmig/service-kit';
import { startSmallServer } from './http-server';
import { IssuerKubeApi, kubeConfig } from './kube-client';
import { IssuerEnvSchema } from './issuer/config';
import { AgentIdentityIssuer } from './issuer/issuer';

runMain('identity-issuer', async () => {
  const env = loadEnv(IssuerEnvSchema);
  let seed: string;
  try {
    seed = readFileSync(env.AGENT_SIGNER_SEED_FILE, 'utf8').trim();
    publicKey(seed);
  } catch (e) {
    throw new Error(`AGENT_SIGNER_SEED_FILE ${env.AGENT_SIGNER_SEED_FILE} is not an account signing key seed (account-signing.nk of flexmig auth init): ${(e as Error).message}`);
  }
  const issuer = new AgentIdentityIssuer(
    new IssuerKubeApi(kubeConfig()),
    { namespace: env.AGENT_NAMESPACE, serviceAccount: env.AGENT_SERVICE_ACCOUNT, audience: env.ISSUER_AUDIENCE },
    { agentSigner: seed, accountPublicKey: env.NATS_ACCOUNT },
    env.IDENTITY_TTL_SECONDS,
  );
  const server = await startSmallServer({
    port: env.PORT,
    host: env.LISTEN_HOST,
    bodyLimit: agentIdentityBodyLimit,
    ready: () => true,
    routes: { [`POST ${agentIdentityRoute}`]: (req, body) => issuer.handle(req, body) },
  });
  console.log(
    `identity-issuer listening on ${env.LISTEN_HOST}:${env.PORT}: agents of ${env.AGENT_NAMESPACE}/${env.AGENT_SERVICE_ACCOUNT}, audience ${env.ISSUER_AUDIENCE}`,
  );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => server.close(() => process.exit(0)));
});
