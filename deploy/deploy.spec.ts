/**
 * The deployment files against the code they deploy: docker-compose.yml, the Helm chart in
 * deploy/helm/flexmig and .env.example must set only variables the services read (a misspelt name is
 * silently ignored at run time, so only a test can catch it), and the stack must have what DESIGN.md
 * "Running it" promises. No Docker engine or helm binary is needed: the files are parsed, not run.
 *
 * Variable names come from the env schemas themselves (zod objects in the config sources below), with a
 * deliberately simple parser: keys are the UPPER_CASE names before a colon inside a `...EnvSchema = ...;`
 * declaration, and a declaration that mentions another schema (`CommonEnvSchema.extend(...)`) includes it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const root = path.resolve(__dirname, '..');
const read = (rel: string) => readFileSync(path.join(root, rel), 'utf8');

// Compose files use merge keys (<<: *anchor), which YAML 1.2 leaves off unless asked.
const parseYaml = (text: string): any => parse(text, { merge: true });

// ---- what each service reads ----
type App = 'inventory' | 'scheduler' | 'cpu-compat' | 'agent' | 'console';
const apps: App[] = ['inventory', 'scheduler', 'cpu-compat', 'agent', 'console'];
const configSources: Record<App, string> = {
  inventory: 'apps/inventory/src/config.ts',
  scheduler: 'apps/scheduler/src/config.ts',
  'cpu-compat': 'apps/cpu-compat/src/main.ts',
  agent: 'apps/agent/src/config.ts',
  console: 'apps/console/src/config.ts',
};
const sharedSource = 'libs/service-kit/src/env.ts';

interface Variable {
  name: string;
  /** The literal default, as a string; undefined when there is none (required, optional or computed). */
  default?: string;
}

interface SchemaDecl {
  vars: Variable[];
  /** Other schemas this one is built from. */
  uses: string[];
}

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

/** `const XEnvSchema = ...;` declarations of one source file. */
function schemaDeclarations(file: string): Map<string, SchemaDecl> {
  const src = stripComments(read(file));
  const decls = new Map<string, SchemaDecl>();
  const declRe = /^\s*(?:export\s+)?const\s+(\w*EnvSchema)\s*=([\s\S]*?)\);[ \t]*$/gm;
  for (const [, name, body] of src.matchAll(declRe)) {
    const keyRe = /(?:^|[{,])\s*([A-Z][A-Z0-9_]*)\s*:/gm;
    const keys = [...body.matchAll(keyRe)].map((m) => ({ name: m[1], at: m.index! + m[0].length }));
    const vars = keys.map((k, i) => ({ name: k.name, default: literalDefault(body.slice(k.at, keys[i + 1]?.at ?? body.length)) }));
    const uses = [...body.matchAll(/\b(\w+EnvSchema)\b/g)].map((m) => m[1]).filter((n) => n !== name);
    decls.set(name, { vars, uses });
  }
  return decls;
}

function literalDefault(definition: string): string | undefined {
  const helper = /\b(?:port|millis)\(\s*([\d_]+)\s*\)/.exec(definition);
  if (helper) return helper[1].replace(/_/g, '');
  const dflt = /\.default\(\s*(?:'([^']*)'|"([^"]*)"|(-?[\d_.]+))\s*\)/.exec(definition);
  if (!dflt) return undefined;
  return dflt[1] ?? dflt[2] ?? dflt[3].replace(/_/g, '');
}

const allDecls = new Map<string, SchemaDecl>();
for (const file of [sharedSource, ...Object.values(configSources)]) {
  for (const [name, decl] of schemaDeclarations(file)) allDecls.set(name, decl);
}

function resolveSchema(name: string, seen = new Set<string>()): Map<string, Variable> {
  const out = new Map<string, Variable>();
  const decl = allDecls.get(name);
  if (!decl || seen.has(name)) return out;
  seen.add(name);
  for (const used of decl.uses) for (const [k, v] of resolveSchema(used, seen)) out.set(k, v);
  for (const v of decl.vars) out.set(v.name, v);
  return out;
}

/** Each app's variables: the union of the schemas its config source declares. */
const reads = Object.fromEntries(
  apps.map((app) => {
    const vars = new Map<string, Variable>();
    for (const name of schemaDeclarations(configSources[app]).keys()) {
      for (const [k, v] of resolveSchema(name)) vars.set(k, v);
    }
    return [app, vars];
  }),
) as Record<App, Map<string, Variable>>;
const commonVars = resolveSchema('CommonEnvSchema');
const databaseVars = resolveSchema('DatabaseEnvSchema');
const httpVars = resolveSchema('HttpEnvSchema');

/** `name` entries that a service does not read. */
function unread(app: App, names: Iterable<string>): string[] {
  return [...names].filter((n) => !reads[app].has(n)).map((n) => `${app}: ${n}`);
}

describe('the env schemas, as this test reads them', () => {
  // Guards the parser itself: if a refactor of the config files hides the variables from it, say so
  // here rather than pass every check below vacuously.
  it('finds the common, database and per-service variables', () => {
    expect([...commonVars.keys()].sort()).toEqual(['LOG_FORMAT', 'LOG_LEVEL', 'NATS_CREDS', 'NATS_TLS_CA', 'NATS_URL', 'SUBJECT_PREFIX']);
    expect([...databaseVars.keys()]).toEqual(['DATABASE_URL']);
    for (const app of apps) {
      for (const common of commonVars.keys()) expect(reads[app].has(common)).toBe(true);
      expect(reads[app].has('PORT')).toBe(true);
    }
    expect(reads.inventory.has('DATABASE_URL')).toBe(true);
    expect(reads.scheduler.has('SCHEDULER_ID')).toBe(true);
    expect(reads.agent.has('DATABASE_URL')).toBe(false);
    expect(reads.agent.has('SIM_CPU')).toBe(true);
    expect(reads['cpu-compat'].get('PORT')?.default).toBe('3003');
    // the HTTP services read the bearer-token settings; the agent (no API) does not
    for (const app of ['inventory', 'scheduler', 'cpu-compat'] as App[]) expect([...httpVars.keys()].every((k) => reads[app].has(k))).toBe(true);
    expect(httpVars.has('AUTH_JWT_SECRET_FILE')).toBe(true);
    expect(reads.agent.has('AUTH')).toBe(false);
  });
});

// ---- docker-compose.yml ----
describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml'));
  const services: Record<string, any> = compose.services ?? {};

  const envOf = (svc: any): Record<string, string> => {
    const env = svc.environment ?? {};
    if (Array.isArray(env)) {
      return Object.fromEntries(env.map((e: string) => [e.split('=')[0], e.split('=').slice(1).join('=')]));
    }
    return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  };
  const commandOf = (svc: any): string => (Array.isArray(svc.command) ? svc.command.join(' ') : String(svc.command ?? ''));
  /** Which flexmig app a compose service runs, from its command. */
  const appOf = (svc: any): App | undefined => /dist\/apps\/([a-z-]+)\/main\.js/.exec(commandOf(svc))?.[1] as App | undefined;
  const servicesOf = (app: App) => Object.entries(services).filter(([, s]) => appOf(s) === app);
  const dependsOn = (svc: any): Record<string, string> => {
    const d = svc.depends_on ?? {};
    if (Array.isArray(d)) return Object.fromEntries(d.map((n: string) => [n, 'service_started']));
    return Object.fromEntries(Object.entries(d).map(([n, c]: [string, any]) => [n, c?.condition ?? 'service_started']));
  };

  it('runs NATS with JetStream on a volume', () => {
    const nats = services.nats;
    expect(nats).toBeDefined();
    expect(nats.image).toMatch(/^nats:2\.10/);
    expect(commandOf(nats).split(/\s+/)).toContain('-js');
    expect(nats.volumes?.length).toBeGreaterThan(0);
    expect(nats.healthcheck).toBeDefined();
  });

  it('runs PostgreSQL 15 on a volume, with a healthcheck', () => {
    const pg = services.postgres;
    expect(pg).toBeDefined();
    expect(pg.image).toMatch(/^postgres:15/);
    expect(pg.volumes?.length).toBeGreaterThan(0);
    expect(pg.healthcheck).toBeDefined();
  });

  it.each(['inventory', 'scheduler', 'cpu-compat', 'console'] as App[])(
    'runs %s once, after healthy infrastructure, probed on /health/ready, its port published',
    (app) => {
      const found = servicesOf(app);
      expect(found.map(([n]) => n)).toHaveLength(1);
      const [, svc] = found[0];
      const env = envOf(svc);
      const port = env.PORT ?? reads[app].get('PORT')?.default;
      const deps = dependsOn(svc);
      expect(deps.nats).toBe('service_healthy');
      if (reads[app].has('DATABASE_URL')) {
        expect(deps.postgres).toBe('service_healthy');
        expect(env.DATABASE_URL).toMatch(/@postgres:5432\//);
      }
      expect(env.NATS_URL).toBe('nats://nats:4222');
      const probe = [].concat(svc.healthcheck?.test ?? []).join(' ');
      expect(probe).toContain(`:${port}/health/ready`);
      const published = (svc.ports ?? []).map((p: any) => String(typeof p === 'object' ? p.target : p).split(':').pop());
      expect(published).toContain(String(port));
    },
  );

  it('runs three sim agents in one cluster, on distinct hosts of distinct CPU generations', () => {
    const agents = servicesOf('agent').map(([name, svc]) => ({ name, env: envOf(svc) }));
    expect(agents.length).toBeGreaterThanOrEqual(3);
    const hostIds = agents.map((a) => a.env.HOST_ID);
    const cpus = agents.map((a) => a.env.SIM_CPU);
    expect(new Set(hostIds).size).toBe(agents.length);
    expect(new Set(cpus).size).toBe(agents.length);
    for (const id of hostIds) expect(id).toMatch(/^[a-z0-9][a-z0-9-]{0,62}$/);
    expect(new Set(agents.map((a) => a.env.CLUSTER_NAME ?? a.env.CLUSTER_ID)).size).toBe(1);
    for (const a of agents) expect(a.env.DRIVER).toBe('sim');
    // Each SIM_CPU must be a baseline of the catalog, or the agent cannot describe its CPU.
    const catalogFile = 'libs/cpu-models/src/catalog.json';
    if (existsSync(path.join(root, catalogFile))) {
      const baselines = new Set((JSON.parse(read(catalogFile)).baselines ?? []).map((b: { name: string }) => b.name));
      for (const cpu of cpus) expect(baselines.has(cpu)).toBe(true);
    }
  });

  it('sets only variables the service reads', () => {
    const bad = Object.entries(services)
      .filter(([, s]) => appOf(s))
      .flatMap(([name, s]) => unread(appOf(s)!, Object.keys(envOf(s))).map((m) => `${name} (${m})`));
    expect(bad).toEqual([]);
  });
});

// ---- the Helm chart ----
describe('deploy/helm/flexmig', () => {
  const chartDir = 'deploy/helm/flexmig';
  const templateFiles: Record<string, App | 'all' | 'database' | null> = {
    '_helpers.tpl': null,
    'NOTES.txt': null,
    'configmap.yaml': 'all',
    'secret.yaml': 'database',
    'inventory.yaml': 'inventory',
    'scheduler.yaml': 'scheduler',
    'cpu-compat.yaml': 'cpu-compat',
    'agent-daemonset.yaml': 'agent',
  };
  const template = (f: string) => read(`${chartDir}/templates/${f}`);

  it('has Chart.yaml, values.yaml and every template', () => {
    const chart = parseYaml(read(`${chartDir}/Chart.yaml`));
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe('flexmig');
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const f of Object.keys(templateFiles)) expect(existsSync(path.join(root, chartDir, 'templates', f))).toBe(true);
  });

  const values = parseYaml(read(`${chartDir}/values.yaml`));

  it('values.yaml has the image, the infrastructure URLs and replicas per service', () => {
    expect(typeof values.image.repository).toBe('string');
    expect(values.nats.url).toMatch(/^nats:\/\//);
    expect(values.database.url).toMatch(/^postgres(ql)?:\/\//);
    expect(values.subjectPrefix).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const s of ['inventory', 'scheduler', 'cpuCompat']) expect(Number.isInteger(values[s].replicas)).toBe(true);
    expect(['sim', 'qemu']).toContain(values.agent.driver);
  });

  it('templates refer only to values that exist in values.yaml', () => {
    const has = (p: string) => p.split('.').reduce<any>((o, k) => (o !== undefined && o !== null && k in o ? o[k] : undefined), values) !== undefined;
    const missing: string[] = [];
    for (const f of readdirSync(path.join(root, chartDir, 'templates'))) {
      const src = template(f);
      // `{{- $values := .Values.agent }}` makes `$values.x` mean `.Values.agent.x`.
      const alias = /\$values\s*:=\s*\.Values\.([\w.]+)/.exec(src)?.[1];
      for (const [, p] of src.matchAll(/\.Values\.([A-Za-z_][\w.]*\w)/g)) if (!has(p)) missing.push(`${f}: .Values.${p}`);
      if (alias) for (const [, p] of src.matchAll(/\$values\.([A-Za-z_][\w.]*\w)/g)) if (!has(`${alias}.${p}`)) missing.push(`${f}: $values.${p}`);
    }
    expect(missing).toEqual([]);
  });

  it('templates are well formed: balanced actions, every block ended, every include defined', () => {
    const helpers = template('_helpers.tpl');
    const defined = new Set([...helpers.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]));
    const problems: string[] = [];
    for (const f of Object.keys(templateFiles)) {
      const src = template(f);
      if ((src.match(/\{\{/g) ?? []).length !== (src.match(/\}\}/g) ?? []).length) problems.push(`${f}: unbalanced {{ }}`);
      const actions = [...src.matchAll(/\{\{-?\s*(\/\*[\s\S]*?\*\/|[\s\S]*?)\s*-?\}\}/g)].map((m) => m[1]);
      const opened = actions.filter((a) => /^(if|range|with|define)\b/.test(a)).length;
      const ended = actions.filter((a) => /^end\b/.test(a)).length;
      if (opened !== ended) problems.push(`${f}: ${opened} blocks opened, ${ended} ended`);
      for (const [, name] of src.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)) if (!defined.has(name)) problems.push(`${f}: ${name} is not defined`);
    }
    expect(problems).toEqual([]);
  });

  it('sets only variables the service reads', () => {
    const bad: string[] = [];
    for (const [f, target] of Object.entries(templateFiles)) {
      if (target === null) continue;
      const src = template(f);
      if (target === 'all' || target === 'database') {
        // ConfigMap data / Secret stringData keys: the environment of every service that loads them.
        const keys = [...src.matchAll(/^\s+([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]);
        expect(keys.length).toBeGreaterThan(0);
        const consumers = target === 'all' ? apps : apps.filter((a) => reads[a].has('DATABASE_URL'));
        for (const app of consumers) bad.push(...unread(app, keys).map((m) => `${f} (${m})`));
        continue;
      }
      const names = [...src.matchAll(/-\s+name:\s+([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]);
      expect(names.length).toBeGreaterThan(0);
      // A variable the service does not read is allowed only as a helper for $(NAME) substitution.
      const helpers = names.filter((n) => src.includes(`$(${n})`));
      bad.push(...unread(target, names.filter((n) => !helpers.includes(n))).map((m) => `${f} (${m})`));
    }
    expect(bad).toEqual([]);
  });

  it('gives the HTTP services their bearer-token settings (flexmig.httpEnv), variables they read, the secret as a file', () => {
    const helpers = template('_helpers.tpl');
    const block = helpers.split('define "flexmig.httpEnv"')[1]?.split('define "flexmig.httpVolumeMounts"')[0] ?? '';
    const names = [...block.matchAll(/-\s+name:\s+([A-Z][A-Z0-9_]*)\s*$/gm)].map((m) => m[1]);
    expect(names).toEqual(expect.arrayContaining(['AUTH', 'AUTH_JWT_SECRET_FILE', 'AUTH_OIDC_ISSUER', 'AUTH_JWKS_URL', 'AUTH_AUDIENCE', 'HTTP_BODY_LIMIT']));
    for (const app of ['inventory', 'scheduler', 'cpu-compat'] as App[]) expect(unread(app, names)).toEqual([]);
    for (const f of ['inventory.yaml', 'scheduler.yaml', 'cpu-compat.yaml']) {
      expect(template(f)).toContain('include "flexmig.httpEnv"');
      expect(template(f)).toContain('include "flexmig.httpVolumeMounts"');
    }
    // secrets never sit in values files: only the name of a Secret of the operator's
    expect(values.auth.jwtSecret).toEqual({ existingSecret: '', key: 'jwt.secret' });
    expect(values.auth.enabled).toBe(true);
  });

  it('probes /health/live and /health/ready and annotates /metrics for Prometheus', () => {
    const helpers = template('_helpers.tpl');
    expect(helpers).toContain('/health/live');
    expect(helpers).toContain('/health/ready');
    expect(helpers).toContain('prometheus.io/path: /metrics');
    for (const f of ['inventory.yaml', 'scheduler.yaml', 'cpu-compat.yaml', 'agent-daemonset.yaml']) {
      expect(template(f)).toContain('include "flexmig.probes"');
      expect(template(f)).toContain('include "flexmig.podAnnotations"');
    }
    for (const f of ['inventory.yaml', 'scheduler.yaml', 'cpu-compat.yaml']) {
      expect(template(f)).toMatch(/kind: Deployment[\s\S]*replicas: \{\{ \$values\.replicas \}\}[\s\S]*kind: Service/);
    }
  });

  it('runs the agent as a DaemonSet named after its node, privileged only for qemu', () => {
    const ds = template('agent-daemonset.yaml');
    expect(ds).toContain('kind: DaemonSet');
    expect(ds).toMatch(/name: HOST_ID\s+valueFrom:\s+fieldRef:\s+fieldPath: spec\.nodeName/);
    expect(ds).toMatch(/\{\{-? if \$qemu \}\}[^{]*privileged: true/);
    expect(ds).toMatch(/\{\{-? if \$values\.hostNetwork \}\}\s*hostNetwork: true/);
  });
});

// ---- .env.example ----
describe('.env.example', () => {
  /** Sections `# ===== name: ... =====` and their `NAME=value` (or `# NAME=`, no fixed default) lines. */
  const sections = new Map<string, Map<string, string | undefined>>();
  let current: Map<string, string | undefined> | undefined;
  for (const line of read('.env.example').split('\n')) {
    const header = /^#\s*=+\s*([\w-]+)/.exec(line);
    if (header) sections.set(header[1], (current = new Map()));
    const set = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    const unset = /^#\s*([A-Z][A-Z0-9_]*)=\s*$/.exec(line);
    if (set) current?.set(set[1], set[2]);
    if (unset) current?.set(unset[1], undefined);
  }

  it.each(apps)('lists every variable %s reads, with its default, and no other', (app) => {
    const listed = new Map([
      ...(sections.get('common') ?? []),
      ...(reads[app].has('DATABASE_URL') ? (sections.get('database') ?? []) : []),
      ...(reads[app].has('AUTH') ? (sections.get('http') ?? []) : []),
      ...(sections.get(app) ?? []),
    ]);
    expect([...listed.keys()].sort()).toEqual([...reads[app].keys()].sort());
    for (const [name, v] of reads[app]) expect(`${name}=${listed.get(name) ?? ''}`).toBe(`${name}=${v.default ?? ''}`);
  });
});
