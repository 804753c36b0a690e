import type http from 'node:http';
import { AgentIdentityRequestSchema, type AgentIdentityReply } from '@flexmig/contracts';
import { type AgentSigner, reservedIdentityNames, signAgentJwt } from '@flexmig/nats-auth';
import { apiError, type IssuerKubeApi } from '../kube-client';
import { HttpError } from '../http-server';
import { type AgentPolicy, hostOfPod, reviewedPod } from './admission';

/**
 * POST /v1/agent-identity: the agent's projected ServiceAccount token (audience-bound, pod-bound) is
 * reviewed by the API server (TokenReview), its pod read (spec.nodeName), and a user JWT signed for the
 * host of that node, for the user key the agent sent. Every refusal says why, to the caller and the log.
 */
export class AgentIdentityIssuer {
  constructor(
    private readonly kube: IssuerKubeApi,
    private readonly policy: AgentPolicy,
    private readonly signer: AgentSigner,
    private readonly ttlSeconds: number,
  ) {}

  async handle(req: http.IncomingMessage, body: string): Promise<{ status: number; body: AgentIdentityReply }> {
    const token = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token) throw new HttpError(401, 'send the pod\'s projected ServiceAccount token as "Authorization: Bearer <token>"');
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new HttpError(400, 'the body is not JSON: expected {"hostId": ..., "publicKey": ...}');
    }
    const parsed = AgentIdentityRequestSchema.safeParse(json);
    if (!parsed.success) throw new HttpError(400, `invalid request: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    const { hostId, publicKey } = parsed.data;

    const review = await this.kube.reviewToken(token, this.policy.audience).catch((e: unknown) => {
      throw new HttpError(503, `the Kubernetes API did not review the token (${apiError(e)}): check the issuer's RBAC (tokenreviews create) and the API's reachability`);
    });
    const pod = reviewedPod(review, token, this.policy);
    if (!pod.ok) return this.refuse(pod.status, pod.reason, hostId);
    const facts = await this.kube.pod(pod.namespace, pod.name).catch((e: unknown) => {
      throw new HttpError(503, `the Kubernetes API did not answer for pod ${pod.namespace}/${pod.name} (${apiError(e)}): check the issuer's RBAC (pods get)`);
    });
    if (!facts) return this.refuse(403, `pod ${pod.namespace}/${pod.name} does not exist`, hostId);
    const host = hostOfPod(pod, facts, hostId);
    if (!host.ok) return this.refuse(host.status, host.reason, hostId);
    if (reservedIdentityNames.includes(host.hostId)) return this.refuse(409, `node host id ${host.hostId} names a service identity: rename the node, or run no agent there`, hostId);

    const jwt = await signAgentJwt(this.signer, host.hostId, publicKey, this.ttlSeconds || undefined);
    console.log(`issued the identity of host ${host.hostId} to pod ${pod.namespace}/${pod.name} (user key ${publicKey})`);
    return { status: 200, body: { hostId: host.hostId, jwt } };
  }

  private refuse(status: number, reason: string, hostId: string): never {
    console.warn(`refused an identity for host ${hostId}: ${reason}`);
    throw new HttpError(status, reason);
  }
}
