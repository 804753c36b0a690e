import { hostIdFromName, HostIdSchema } from '@flexmig/contracts';

/**
 * Who may have which agent identity: pure decisions over what the Kubernetes API said (the issuer asks it,
 * issuer-server.ts). A pod's ServiceAccount token proves the pod; the pod's node names the one host whose
 * identity it may have. docs/kubernetes.md, "The identity issuer".
 */

/** The status of a TokenReview (authentication.k8s.io/v1), as far as it is read here. */
export interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

/** The extra fields newer API servers put on a reviewed pod-bound token (not 1.20: there the token's claims say it). */
export const podNameExtra = 'authentication.kubernetes.io/pod-name';
export const podUidExtra = 'authentication.kubernetes.io/pod-uid';

/** What the issuer is configured to accept: the agents' ServiceAccount and the audience of their projected tokens. */
export interface AgentPolicy {
  namespace: string;
  serviceAccount: string;
  audience: string;
}

export type Refusal = { ok: false; status: 401 | 403 | 409; reason: string };
export interface ReviewedPod {
  ok: true;
  namespace: string;
  name: string;
  uid: string;
}

const refuse = (status: Refusal['status'], reason: string): Refusal => ({ ok: false, status, reason });

/**
 * The pod-bound claims of a ServiceAccount token (`kubernetes.io.pod`). Read without checking the signature:
 * only after the API server's TokenReview said the token is authentic, which includes that the pod it is
 * bound to still exists with that uid.
 */
export function podClaims(token: string): { name: string; uid: string } | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { 'kubernetes.io'?: { pod?: { name?: unknown; uid?: unknown } } };
    const pod = payload['kubernetes.io']?.pod;
    return typeof pod?.name === 'string' && typeof pod.uid === 'string' ? { name: pod.name, uid: pod.uid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pod a reviewed token belongs to, or why it is refused: not authenticated for the issuer's audience
 * (401), another ServiceAccount than the agents' (403), or not bound to a pod (403: a token from the
 * TokenRequest API without a pod, or a legacy Secret token, proves no node).
 */
export function reviewedPod(review: TokenReviewStatus, token: string, policy: AgentPolicy): ReviewedPod | Refusal {
  if (!review.authenticated) return refuse(401, `the token was not accepted for the audience ${policy.audience}: ${review.error ?? 'not authenticated'}`);
  if (!(review.audiences ?? []).includes(policy.audience)) {
    return refuse(401, `the token is not for the audience ${policy.audience} (it is for ${(review.audiences ?? []).join(', ') || 'none'})`);
  }
  const expected = `system:serviceaccount:${policy.namespace}:${policy.serviceAccount}`;
  const username = review.user?.username ?? '';
  if (username !== expected) return refuse(403, `${username || 'this user'} is not the agents' ServiceAccount (${expected})`);
  const extra = review.user?.extra ?? {};
  const fromExtra = extra[podNameExtra]?.[0] && extra[podUidExtra]?.[0] ? { name: extra[podNameExtra][0], uid: extra[podUidExtra][0] } : undefined;
  const pod = fromExtra ?? podClaims(token);
  if (!pod) return refuse(403, 'the token is not bound to a pod: use the projected ServiceAccount token of the agent pod (serviceAccountToken volume)');
  return { ok: true, namespace: policy.namespace, name: pod.name, uid: pod.uid };
}

/** What the issuer read of the pod (core/v1 Pod). */
export interface PodFacts {
  uid?: string;
  nodeName?: string;
  deleting?: boolean;
}

/**
 * The host the pod may act as: its node's name mapped to a host id (the same rule as the agent's HOST_ID
 * from spec.nodeName). Refused when the pod is another one by now (a new uid), has no node yet, is being
 * deleted, or when the agent asks for another host than its node's.
 */
export function hostOfPod(pod: ReviewedPod, facts: PodFacts, requestedHostId: string): { ok: true; hostId: string } | Refusal {
  if (facts.uid !== pod.uid) return refuse(403, `pod ${pod.namespace}/${pod.name} is not the pod the token was issued to (uid ${pod.uid})`);
  if (facts.deleting) return refuse(403, `pod ${pod.namespace}/${pod.name} is being deleted`);
  if (!facts.nodeName) return refuse(409, `pod ${pod.namespace}/${pod.name} is not on a node yet`);
  const parsed = HostIdSchema.safeParse(hostIdFromName(facts.nodeName));
  if (!parsed.success) return refuse(409, `node ${facts.nodeName} maps to no valid host id`);
  const hostId = parsed.data;
  if (requestedHostId !== hostId) {
    return refuse(403, `pod ${pod.namespace}/${pod.name} runs on node ${facts.nodeName} (host ${hostId}); it may not have the identity of host ${requestedHostId}`);
  }
  return { ok: true, hostId };
}
