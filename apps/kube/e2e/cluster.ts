import path from 'node:path';
import { Chart, type KubeApiServer, repoRoot } from '@flexmig/testing';

/** The namespace and release the chart is rendered for (deploy/test-helpers: release "release" in "flexmig"). */
export const namespace = 'flexmig';
export const names = {
  agent: 'release-flexmig-agent',
  issuer: 'release-flexmig-identity-issuer',
  watcher: 'release-flexmig-drain-watcher',
  console: 'release-flexmig-console',
};

const rbacKinds = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']);

/**
 * The cluster as the chart leaves it, for what the API server can hold without a kubelet: the namespace,
 * and the chart's own ServiceAccounts, Roles and bindings, rendered by the real helm with the Kubernetes
 * integration on. The processes under test then act with exactly the chart's RBAC, no more.
 */
export async function installChartRbac(kube: KubeApiServer): Promise<void> {
  const chart = new Chart(path.join(repoRoot, 'deploy/helm/flexmig'));
  const r = chart.render({ values: ['deploy/helm/examples/production.yaml', 'deploy/helm/examples/kube-integration.yaml'] });
  if (r.error) throw new Error(`the chart did not render: ${r.error}`);
  await kube.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }]);
  await kube.apply(r.objects.filter((o) => rbacKinds.has(o.kind)).map((o) => ({ ...o, metadata: { ...o.metadata, namespace: o.kind.startsWith('Cluster') ? undefined : namespace } })));
}

/** A pod as the DaemonSet would make it, placed on `node` (no kubelet runs it: it only exists). */
export async function createPod(kube: KubeApiServer, name: string, node: string, serviceAccount: string): Promise<{ name: string; uid: string }> {
  const pod = await kube.ok<{ metadata: { uid: string } }>('POST', `/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { nodeName: node, serviceAccountName: serviceAccount, automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'flexmig:test' }] },
  });
  return { name, uid: pod.metadata.uid };
}

/** A Node object (no kubelet: the test is the node's only writer besides the code under test). */
export async function createNode(kube: KubeApiServer, name: string, labels: Record<string, string> = {}): Promise<void> {
  await kube.ok('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } });
}
