import * as k8s from '@kubernetes/client-node';
import type { PodFacts, TokenReviewStatus } from './issuer/admission';

/**
 * The Kubernetes API, through the official client (@kubernetes/client-node 2.x, ESM: Node ≥ 22.12 loads it
 * from this CommonJS bundle with require(esm); the Jest tests never import this file, they run the built
 * processes against a real kube-apiserver). In a pod: the pod's ServiceAccount (in-cluster config);
 * elsewhere: KUBECONFIG.
 */
export function kubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes API to talk to: run in a pod (in-cluster) or set KUBECONFIG');
  return kc;
}

/** The HTTP status of a failed API call (404, 403 ...), when it has one. */
export const apiStatus = (e: unknown): number | undefined => (e instanceof k8s.ApiException ? e.code : undefined);

/** What failed, in one line (the client's errors carry the whole response). */
export function apiError(e: unknown): string {
  if (e instanceof k8s.ApiException) {
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      /* not JSON */
    }
    return `HTTP ${e.code}: ${message}`;
  }
  return (e as Error).message ?? String(e);
}

/** TokenReview and Pod reads: the identity issuer's whole use of the API (RBAC: tokenreviews create, pods get). */
export class IssuerKubeApi {
  private readonly auth: k8s.AuthenticationV1Api;
  private readonly core: k8s.CoreV1Api;

  constructor(kc: k8s.KubeConfig) {
    this.auth = kc.makeApiClient(k8s.AuthenticationV1Api);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async reviewToken(token: string, audience: string): Promise<TokenReviewStatus> {
    const review = await this.auth.createTokenReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
    });
    return review.status ?? {};
  }

  /** The pod's uid and node; undefined when it does not exist. */
  async pod(namespace: string, name: string): Promise<PodFacts | undefined> {
    try {
      const pod = await this.core.readNamespacedPod({ namespace, name });
      return { uid: pod.metadata?.uid, nodeName: pod.spec?.nodeName, deleting: Boolean(pod.metadata?.deletionTimestamp) };
    } catch (e) {
      if (apiStatus(e) === 404) return undefined;
      throw e;
    }
  }
}
