import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { type Launched, freePort, launch, repoRoot } from './processes';

/**
 * A real Kubernetes API server for the tests of flexmig's Kubernetes integration (apps/kube): etcd from
 * Debian and kube-apiserver v1.20.2 built once per machine by tools/kube-apiserver.sh (outside the
 * repository). Both on loopback, on free ports, in a directory of their own. It has Nodes, watches, RBAC,
 * ServiceAccounts, TokenRequest and TokenReview; no kubelet (no pod ever runs) and no controller manager.
 * Facts and limits: ../shared/reference/kube-apiserver.md.
 */

/** The binary's path, or an error that says how to get it. */
export function kubeApiServerBinary(): string {
  try {
    return execFileSync(path.join(repoRoot, 'tools/kube-apiserver.sh'), ['--print-path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`kube-apiserver is not built on this machine (${stderr || (e as Error).message}): run tools/kube-apiserver.sh once (about 4 min; .ci/run does it)`);
  }
}

/** The issuer every ServiceAccount token of this server names (`iss`), and the API's own audience. */
export const kubeTestIssuer = 'https://kubernetes.default.svc.cluster.local';

export interface KubeReply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export interface KubeRequestOptions {
  /** Bearer token (default: the test's cluster admin). */
  token?: string;
  /** Default application/json; patches name their kind (application/strategic-merge-patch+json ...). */
  contentType?: string;
}

export class KubeApiServer {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'flexmig-kube-'));
  /** A token of the group system:masters (the static token file): to set the cluster up, never for the code under test. */
  readonly adminToken = 'test-admin-token';
  port = 0;
  private etcd?: Launched;
  private apiserver?: Launched;
  private ca = Buffer.alloc(0);

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The self-signed certificate (and its CA) the server made for itself. */
  get caFile(): string {
    return path.join(this.dir, 'certs/apiserver.crt');
  }

  async start(): Promise<this> {
    const binary = kubeApiServerBinary();
    const [client, peer] = [await freePort(), await freePort()];
    this.port = await freePort();
    mkdirSync(path.join(this.dir, 'etcd'), { mode: 0o700 });
    mkdirSync(path.join(this.dir, 'certs'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path.join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(path.join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(path.join(this.dir, 'tokens.csv'), `${this.adminToken},test-admin,1000,system:masters\n`, { mode: 0o600 });
    const etcdUrl = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    this.etcd = launch(
      'etcd',
      ['--name', 't', '--data-dir', path.join(this.dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `t=${peerUrl}`, '--quota-backend-bytes=268435456'],
      { name: 'etcd', env: { GOMEMLIMIT: '256MiB' } },
    );
    this.apiserver = launch(
      binary,
      [
        `--etcd-servers=${etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${this.port}`, '--insecure-port=0',
        `--cert-dir=${path.join(this.dir, 'certs')}`, `--token-auth-file=${path.join(this.dir, 'tokens.csv')}`, '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.96.0.0/24', `--service-account-issuer=${kubeTestIssuer}`,
        `--service-account-key-file=${path.join(this.dir, 'sa.pub')}`, `--service-account-signing-key-file=${path.join(this.dir, 'sa.key')}`,
        `--api-audiences=${kubeTestIssuer}`, '--disable-admission-plugins=ServiceAccount', '--profiling=false',
      ],
      { name: 'kube-apiserver', env: { GOMEMLIMIT: '768MiB' } },
    );
    await this.waitReady();
    return this;
  }

  private async waitReady(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const p of [this.etcd, this.apiserver]) {
        if (p && !p.running) throw new Error(`${p.name} exited before the API server was ready:\n${p.tail(40)}`);
      }
      try {
        this.ca = readFileSync(this.caFile);
        const r = await this.request('GET', '/readyz');
        if (r.status === 200) return;
        last = `readyz answered ${r.status}: ${JSON.stringify(r.body)}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`kube-apiserver was not ready within ${timeoutMs} ms (${last}):\n${this.apiserver?.tail(40)}`);
  }

  /** One API call; the body is parsed as JSON when it is JSON (readyz answers text). */
  request<T = Record<string, unknown>>(method: string, route: string, body?: unknown, opts: KubeRequestOptions = {}): Promise<KubeReply<T>> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${this.url}${route}`,
        {
          method,
          ca: this.ca,
          headers: {
            authorization: `Bearer ${opts.token ?? this.adminToken}`,
            accept: 'application/json',
            ...(data ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              /* text */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** A call that must succeed (2xx): its body, or an error with the server's answer. */
  async ok<T = Record<string, unknown>>(method: string, route: string, body?: unknown, opts: KubeRequestOptions = {}): Promise<T> {
    const r = await this.request<T>(method, route, body, opts);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${route} answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Creates (or replaces the spec of) objects given as manifests: the chart's RBAC, namespaces, ServiceAccounts. */
  async apply(objects: Record<string, unknown>[]): Promise<void> {
    for (const o of objects) {
      const kind = String(o.kind);
      const name = String((o.metadata as { name: string }).name);
      const ns = (o.metadata as { namespace?: string }).namespace;
      const route = collectionRoute(String(o.apiVersion), kind, ns);
      const r = await this.request('POST', route, o);
      if (r.status === 409) await this.ok('PUT', `${route}/${name}`, o);
      else if (r.status < 200 || r.status > 299) throw new Error(`creating ${kind} ${name} answered ${r.status}: ${JSON.stringify(r.body)}`);
    }
  }

  /**
   * A ServiceAccount token as the kubelet projects it: for `audiences`, bound to the pod when `pod` is
   * given (the token then carries the pod's name and uid, and dies with the pod).
   */
  async serviceAccountToken(namespace: string, serviceAccount: string, audiences: string[], pod?: { name: string; uid: string }): Promise<string> {
    const r = await this.ok<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences, expirationSeconds: 3600, ...(pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } } : {}) },
    });
    return r.status.token;
  }

  /** A kubeconfig file that reaches this server with `token`: what a process under test is given (KUBECONFIG). */
  kubeconfig(token: string, name = 'user'): string {
    const file = path.join(this.dir, `kubeconfig-${name}.yaml`);
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: this.url, 'certificate-authority': this.caFile } }],
        users: [{ name, user: { token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: name } }],
        'current-context': 'test',
      }),
      { mode: 0o600 },
    );
    return file;
  }

  async stop(): Promise<void> {
    await this.apiserver?.stop();
    await this.etcd?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The last lines of both processes (for a failure's message). */
  tail(lines = 20): string {
    return `kube-apiserver:\n${this.apiserver?.tail(lines) ?? ''}\netcd:\n${this.etcd?.tail(lines) ?? ''}`;
  }
}

/** The REST collection of a kind: /api/v1/... for the core group, /apis/<group>/<version>/... otherwise. */
function collectionRoute(apiVersion: string, kind: string, namespace?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const plural = kind.toLowerCase().endsWith('s') ? `${kind.toLowerCase()}es` : kind.toLowerCase().endsWith('y') ? `${kind.toLowerCase().slice(0, -1)}ies` : `${kind.toLowerCase()}s`;
  return namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

/** Starts etcd and kube-apiserver; stop them with stop(). */
export function startKubeApiServer(): Promise<KubeApiServer> {
  return new KubeApiServer().start();
}
