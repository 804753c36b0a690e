// apps/kube: flexmig's Kubernetes integration, two processes of one app (two Deployments, two ServiceAccounts,
// neither holding the other's secrets): dist/apps/kube/issuer.js (per-host agent identities) and
// dist/apps/kube/drain-watcher.js (a cordoned node is evacuated). docs/kubernetes.md.
console.error('flexmig kube: run dist/apps/kube/issuer.js (the agents\' identity issuer) or dist/apps/kube/drain-watcher.js (node drain → evacuation)');
process.exit(2);
