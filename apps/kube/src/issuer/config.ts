import { z } from 'zod';
import { port } from '@flexmig/service-kit';

export const IssuerEnvSchema = z.object({
  /** /v1/agent-identity, /health/live, /health/ready. */
  PORT: port(3020),
  /** The address to listen on (all interfaces in a pod; 127.0.0.1 in tests). */
  LISTEN_HOST: z.string().min(1).default('0.0.0.0'),
  /** The audience the agents' projected ServiceAccount tokens must carry (the pods' serviceAccountToken volume). */
  ISSUER_AUDIENCE: z.string().min(1).max(253).default('flexmig-identity-issuer'),
  /** The namespace and ServiceAccount of the agent pods: tokens of any other ServiceAccount are refused. */
  AGENT_NAMESPACE: z.string().min(1).max(63),
  AGENT_SERVICE_ACCOUNT: z.string().min(1).max(253),
  /** account-signing.nk of `flexmig auth init`: the scoped key that signs agent identities (and nothing else). */
  AGENT_SIGNER_SEED_FILE: z.string().min(1),
  /** The flexmig account's public key ("A...": accountPublicKey in auth.json; not secret). */
  NATS_ACCOUNT: z.string().regex(/^A[A-Z2-7]{55}$/, 'expected an account public key (A followed by 55 base32 characters)'),
  /** Lifetime of an issued identity, seconds; 0: none (revoke with `flexmig auth revoke-agent`). An agent asks again at each start. */
  IDENTITY_TTL_SECONDS: z.coerce.number().int().min(0).max(366 * 24 * 3600).default(0),
});
export type IssuerEnv = z.infer<typeof IssuerEnvSchema>;
