import { hostOfPod, podClaims, podNameExtra, podUidExtra, reviewedPod } from './admission';

const policy = { namespace: 'flexmig', serviceAccount: 'release-flexmig-agent', audience: 'flexmig-identity-issuer' };
const agentUser = 'system:serviceaccount:flexmig:release-flexmig-agent';
/** A token's shape (header.payload.signature) with pod claims as the API server puts them; the signature is not read here. */
const token = (pod?: { name: string; uid: string }) =>
  `e30.${Buffer.from(JSON.stringify({ 'kubernetes.io': { namespace: 'flexmig', ...(pod ? { pod } : {}) } })).toString('base64url')}.sig`;
const ok = { authenticated: true, audiences: [policy.audience], user: { username: agentUser } };
const pod = { ok: true as const, namespace: 'flexmig', name: 'agent-x', uid: 'u-1' };

describe('reviewedPod: which pod a reviewed token proves', () => {
  it('takes the pod from the token claims (kube 1.20), or from the review extra fields (newer servers)', () => {
    expect(reviewedPod(ok, token({ name: 'agent-x', uid: 'u-1' }), policy)).toEqual(pod);
    const extra = { ...ok, user: { username: agentUser, extra: { [podNameExtra]: ['agent-y'], [podUidExtra]: ['u-2'] } } };
    expect(reviewedPod(extra, token(), policy)).toEqual({ ...pod, name: 'agent-y', uid: 'u-2' });
  });

  it('refuses an unauthenticated token, another audience, another ServiceAccount, and a token bound to no pod', () => {
    expect(reviewedPod({ authenticated: false, error: 'token audiences ["api"] is invalid' }, token(), policy)).toMatchObject({ ok: false, status: 401 });
    expect(reviewedPod({ ...ok, audiences: ['api'] }, token({ name: 'a', uid: 'b' }), policy)).toMatchObject({ ok: false, status: 401 });
    expect(reviewedPod({ ...ok, user: { username: 'system:serviceaccount:flexmig:other' } }, token({ name: 'a', uid: 'b' }), policy)).toMatchObject({ ok: false, status: 403 });
    expect(reviewedPod(ok, token(), policy)).toMatchObject({ ok: false, status: 403, reason: expect.stringContaining('not bound to a pod') });
    expect(podClaims('not-a-jwt')).toBeUndefined();
  });
});

describe('hostOfPod: the one host a pod may act as', () => {
  it("is its node's name mapped as the agent maps spec.nodeName", () => {
    expect(hostOfPod(pod, { uid: 'u-1', nodeName: 'Node-1.example.com' }, 'node-1-example-com')).toEqual({ ok: true, hostId: 'node-1-example-com' });
  });

  it('refuses another host, a replaced pod, a pod being deleted, and a pod not yet on a node', () => {
    expect(hostOfPod(pod, { uid: 'u-1', nodeName: 'node-b' }, 'node-a')).toMatchObject({ ok: false, status: 403 });
    expect(hostOfPod(pod, { uid: 'u-other', nodeName: 'node-a' }, 'node-a')).toMatchObject({ ok: false, status: 403 });
    expect(hostOfPod(pod, { uid: 'u-1', nodeName: 'node-a', deleting: true }, 'node-a')).toMatchObject({ ok: false, status: 403 });
    expect(hostOfPod(pod, { uid: 'u-1' }, 'node-a')).toMatchObject({ ok: false, status: 409 });
  });
});
