import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { agentCreds, agentPermissions, authFiles, newUserKey } from '@flexmig/nats-auth';
import { freePort, type KubeApiServer, kubeTestIssuer, type Launched, launchService, NatsServerProcess, permissionViolation, ServiceProcess, startKubeApiServer } from '@flexmig/testing';
import { createPod, installChartRbac, names, namespace } from './cluster';

/**
 * Per-host identities issued by the cluster (issue 14, item 3), against a real kube-apiserver (v1.20.2,
 * tools/kube-apiserver.sh) and a real nats-server in operator mode: the issuer (dist/apps/kube/issuer.js)
 * runs with the chart's RBAC, reviews the pods' projected tokens and signs identities an agent connects
 * with. A pod on node B cannot get node A's identity; a token for another audience, of another
 * ServiceAccount, or bound to no pod gets none.
 */
const prefix = 'kubeid';
const audience = 'flexmig-identity-issuer';

describe('agent identities from the issuer (real kube-apiserver, real NATS)', () => {
  let kube: KubeApiServer;
  const nats = new NatsServerProcess({ auth: { prefix } });
  let issuer: Launched;
  let issuerUrl = '';
  const pods: Record<string, { name: string; uid: string }> = {};
  const tmp = mkdtempSync(path.join(tmpdir(), 'flexmig-kube-identity-'));
  const open: NatsConnection[] = [];
  const agents: ServiceProcess[] = [];

  beforeAll(async () => {
    [kube] = await Promise.all([startKubeApiServer(), nats.start()]);
    await installChartRbac(kube);
    pods.a = await createPod(kube, 'agent-on-node-a', 'node-a', names.agent);
    pods.b = await createPod(kube, 'agent-on-node-b', 'node-b', names.agent);
    pods.consoleOnA = await createPod(kube, 'console-on-node-a', 'node-a', names.console);
    // the issuer as its pod would run: its own ServiceAccount's token (the API's audience), the chart's RBAC
    const issuerToken = await kube.serviceAccountToken(namespace, names.issuer, [kubeTestIssuer]);
    const auth = JSON.parse(readFileSync(path.join(nats.authDir!, authFiles.state), 'utf8')) as { accountPublicKey: string };
    const port = await freePort();
    issuerUrl = `http://127.0.0.1:${port}`;
    issuer = launchService('kube', {
      entry: 'issuer',
      name: 'identity-issuer',
      env: {
        PORT: String(port),
        LISTEN_HOST: '127.0.0.1',
        KUBECONFIG: kube.kubeconfig(issuerToken, 'issuer'),
        ISSUER_AUDIENCE: audience,
        AGENT_NAMESPACE: namespace,
        AGENT_SERVICE_ACCOUNT: names.agent,
        AGENT_SIGNER_SEED_FILE: path.join(nats.authDir!, authFiles.keys.agentSigner),
        NATS_ACCOUNT: auth.accountPublicKey,
      },
    });
    await issuer.waitReady(port);
  }, 180_000);

  afterAll(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    for (const a of agents) await a.stop();
    await issuer?.stop();
    await kube?.stop();
    await nats.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** The projected token of a pod's ServiceAccount, as the kubelet writes it into the pod. */
  const podToken = (pod: { name: string; uid: string }, serviceAccount = names.agent, audiences = [audience]) =>
    kube.serviceAccountToken(namespace, serviceAccount, audiences, pod);

  async function ask(token: string, hostId: string, publicKey = newUserKey().getPublicKey()) {
    const res = await fetch(`${issuerUrl}/v1/agent-identity`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostId, publicKey }),
    });
    return { status: res.status, body: (await res.json()) as { hostId?: string; jwt?: string; message?: string } };
  }

  const violation = (nc: NatsConnection, subject: string, act: () => unknown) => permissionViolation(nc, subject, act, 5_000);

  it("issues the pod on node-a node-a's identity, which connects to NATS with node-a's permissions and no other host's", async () => {
    const user = newUserKey();
    const issued = await ask(await podToken(pods.a), 'node-a', user.getPublicKey());
    expect(issued.status).toBe(200);
    expect(issued.body.hostId).toBe('node-a');
    const claims = JSON.parse(Buffer.from(issued.body.jwt!.split('.')[1], 'base64url').toString('utf8'));
    expect({ name: claims.name, sub: claims.sub }).toEqual({ name: 'node-a', sub: user.getPublicKey() });

    const nc = await connect({ servers: nats.url, authenticator: credsAuthenticator(new TextEncoder().encode(agentCreds(issued.body.jwt!, user))), inboxPrefix: '_INBOX.node-a', maxReconnectAttempts: 0 });
    open.push(nc);
    // its own subjects work: it receives a command sent to node-a (from the test's observer)
    const observer = await connect({ servers: nats.url, authenticator: credsAuthenticator(readFileSync(nats.observerCreds)), maxReconnectAttempts: 0 });
    open.push(observer);
    const own = agentPermissions(prefix, 'node-a').sub.allow[0]; // `${prefix}.agent.node-a.>`
    const sub = nc.subscribe(own, { max: 1 });
    await nc.flush();
    observer.publish(`${prefix}.agent.node-a.ping`, 'hello');
    for await (const m of sub) expect(m.subject).toBe(`${prefix}.agent.node-a.ping`);
    // node-b's are refused: listening to its commands, and announcing itself as node-b
    const listen = await violation(nc, `${prefix}.agent.node-b.>`, () => {
      nc.subscribe(`${prefix}.agent.node-b.>`);
      return nc.flush();
    });
    expect(listen.operation).toBe('subscription');
    const registerB = agentPermissions(prefix, 'node-b').pub.allow[0];
    const announce = await violation(nc, registerB, () => {
      nc.publish(registerB, '{}');
      return nc.flush();
    });
    expect(announce.operation).toBe('publish');
  });

  it("refuses the pod on node-b node-a's identity (403), and gives it node-b's", async () => {
    const token = await podToken(pods.b);
    const refused = await ask(token, 'node-a');
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('runs on node node-b (host node-b); it may not have the identity of host node-a');
    expect((await ask(token, 'node-b')).body.hostId).toBe('node-b');
  });

  it('refuses a token without the issuer audience (401): the API server token of the same pod', async () => {
    const refused = await ask(await podToken(pods.a, names.agent, [kubeTestIssuer]), 'node-a');
    expect(refused.status).toBe(401);
    expect(refused.body.message).toContain(`not accepted for the audience ${audience}`);
  });

  it('refuses another ServiceAccount on the same node, a token bound to no pod, a deleted pod, and no token at all', async () => {
    const otherSa = await ask(await podToken(pods.consoleOnA, names.console), 'node-a');
    expect([otherSa.status, otherSa.body.message]).toEqual([403, expect.stringContaining(`is not the agents' ServiceAccount (system:serviceaccount:${namespace}:${names.agent})`)]);

    const unbound = await ask(await kube.serviceAccountToken(namespace, names.agent, [audience]), 'node-a');
    expect([unbound.status, unbound.body.message]).toEqual([403, expect.stringContaining('not bound to a pod')]);

    const doomed = await createPod(kube, 'agent-deleted', 'node-a', names.agent);
    const token = await podToken(doomed);
    await kube.ok('DELETE', `/api/v1/namespaces/${namespace}/pods/${doomed.name}?gracePeriodSeconds=0`);
    const gone = await ask(token, 'node-a');
    expect([401, 403]).toContain(gone.status); // the API server refuses a token whose pod is gone (401) or the pod read does (403)

    const none = await fetch(`${issuerUrl}/v1/agent-identity`, { method: 'POST', body: '{}' });
    expect(none.status).toBe(401);
  });

  it('starts a real agent with IDENTITY_ISSUER_URL: it connects as its host; the same token for another HOST_ID stops the agent with the reason', async () => {
    const tokenFile = path.join(tmp, 'token-a');
    writeFileSync(tokenFile, await podToken(pods.a), { mode: 0o600 });
    const base = { NATS_URL: nats.url, SUBJECT_PREFIX: prefix, IDENTITY_ISSUER_URL: issuerUrl, IDENTITY_TOKEN_FILE: tokenFile, AGENT_STATE_DIR: path.join(tmp, 'state'), LOG_LEVEL: 'log' };
    const port = await freePort();
    const agent = new ServiceProcess('agent', { ...base, HOST_ID: 'node-a', PORT: String(port) }, port, 'agent-node-a');
    agents.push(agent);
    await agent.start(); // ready: connected to NATS with the issued identity
    expect(agent.output.join('\n')).toContain("host node-a's NATS identity issued by");

    const impostorPort = await freePort();
    const impostor = new ServiceProcess('agent', { ...base, HOST_ID: 'node-b', PORT: String(impostorPort) }, undefined, 'agent-impostor');
    agents.push(impostor);
    await impostor.start();
    expect((await impostor.exited).code).toBe(1);
    expect(impostor.output.join('\n')).toContain('did not issue host node-b');
  });
});
