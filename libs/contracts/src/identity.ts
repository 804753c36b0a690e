import { z } from 'zod';
import { HostIdSchema } from './common';

// The identity issuer (apps/kube, issuer): on Kubernetes an agent pod asks it for its host's NATS identity,
// proving which pod it is with its projected ServiceAccount token (docs/security.md, "Agents on Kubernetes").

/** The route the issuer serves: `POST` with `Authorization: Bearer <projected ServiceAccount token>`. */
export const agentIdentityRoute = '/v1/agent-identity';

/** A NATS user public key (an nkey: "U" and 55 base32 characters). The agent keeps the seed. */
export const NatsUserPublicKeySchema = z.string().regex(/^U[A-Z2-7]{55}$/, 'expected a NATS user public key (U followed by 55 base32 characters)');

/** The request: which host the agent believes it is on (its HOST_ID) and the user key to sign. */
export const AgentIdentityRequestSchema = z.object({ hostId: HostIdSchema, publicKey: NatsUserPublicKeySchema }).strict();
export type AgentIdentityRequest = z.infer<typeof AgentIdentityRequestSchema>;

/** The reply: the user JWT for that key, named after the host of the pod's node (the only host it may act as). */
export const AgentIdentityReplySchema = z.object({ hostId: HostIdSchema, jwt: z.string().min(1).max(16_384) }).strict();
export type AgentIdentityReply = z.infer<typeof AgentIdentityReplySchema>;

/** The largest request body the issuer reads, bytes. */
export const agentIdentityBodyLimit = 4_096;
