/**
 * The deployment files against the code they deploy: docker-compose.yml, the Helm chart in
 * deploy/helm/flexmig and .env.example must set only variables the services read (a misspelt name is
 * silently ignored at run time, so only a test can catch it), and the stack must have what DESIGN.md
 * "Running it" promises. No Docker engine is needed: docker-compose.yml is checked by `docker-compose config`
 * and parsed; the chart is linted and rendered by a real helm (tools/helm.mjs) and what it renders is
 * validated against the Kubernetes schemas and the Pod Security "restricted" rules (deploy/test-helpers.ts).
 *
 * Variable names come from the env schemas themselves (zod objects in the config sources below), with a
 * deliberately simple parser: keys are the UPPER_CASE names before a colon inside a `...EnvSchema = ...;`
 * declaration, and a declaration that mentions another schema (`CommonEnvSchema.extend(...)`) includes it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { Chart, type RenderOptions, restrictedViolations, validateManifests } from './test-helpers';

const root = path.resolve(__dirname, '..');
const read = (rel: string) => readFileSync(path.join(root, rel), 'utf8');

// Compose files use merge keys (<<: *anchor), which YAML 1.2 leaves off unless asked.
const parseYaml = (text: string): any => parse(text, { merge: true });

// ---- what each service reads ----
type App = 'inventory' | 'scheduler' | 'cpu-compat' | 'agent' | 'console';
const apps: App[] = ['inventory', 'scheduler', 'cpu-compat', 'agent', 'console'];
/** The Kubernetes integration's processes (apps/kube): no NATS, no common environment (no ConfigMap). */
type KubeApp = 'identity-issuer' | 'drain-watcher';
const kubeApps: KubeApp[] = ['identity-issuer', 'drain-watcher'];
const configSources: Record<App | KubeApp, string> = {
  inventory: 'apps/inventory/src/config.ts',
  scheduler: 'apps/scheduler/src/config.ts',
  'cpu-compat': 'apps/cpu-compat/src/main.ts',
  agent: 'apps/agent/src/config.ts',
  console: 'apps/console/src/config.ts',
  'identity-issuer': 'apps/kube/src/issuer/config.ts',
  'drain-watcher': 'apps/kube/src/drain/config.ts',
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
  [...apps, ...kubeApps].map((app) => {
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
function unread(app: App | KubeApp, names: Iterable<string>): string[] {
  return [...names].filter((n) => !reads[app].has(n)).map((n) => `${app}: ${n}`);
}

describe('the env schemas, as this test reads them', () => {
  // Guards the parser itself: if a refactor of the config files hides the variables from it, say so
  // here rather than pass every check below vacuously.
  it('finds the common, database and per-service variables', () => {
    expect([...commonVars.keys()].sort()).toEqual([
      'EVENTS_MAX_AGE',
      'EVENTS_MAX_BYTES',
      'EVENTS_STREAM_REPLICAS',
      'LOG_FORMAT',
      'LOG_LEVEL',
      'NATS_CREDS',
      'NATS_PING_INTERVAL_MS',
      'NATS_TLS_CA',
      'NATS_URL',
      'SUBJECT_PREFIX',
    ]);
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

  it('is valid for docker-compose itself (docker-compose config -q)', () => {
    // Debian's docker-compose package (.ci/run installs it when missing); no Docker engine is needed to check the file
    const r = spawnSync('docker-compose', ['config', '-q'], { cwd: root, encoding: 'utf8' });
    if (r.error) throw new Error(`docker-compose is not installed (apt-get install docker-compose): ${r.error.message}`);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

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

// ---- the Helm chart, rendered by a real helm (tools/helm.mjs) ----
describe('deploy/helm/flexmig', () => {
  const chart = new Chart(path.join(root, 'deploy/helm/flexmig'));
  /** The value sets CI renders: every example an operator may start from, and the chart's own corners. */
  const sets: Record<string, RenderOptions> = {
    // the defaults, with the one thing they lack on purpose (a way to check tokens)
    default: { set: ['auth.jwtSecret.existingSecret=flexmig-jwt'] },
    dev: { values: ['deploy/helm/test-values/dev.yaml'] },
    'existing secrets (production)': { values: ['deploy/helm/examples/production.yaml'] },
    'secrets from files': { values: ['deploy/helm/test-values/files-secrets.yaml'] },
    'qemu with KVM (device plugin)': { values: ['deploy/helm/examples/production.yaml', 'deploy/helm/examples/qemu-kvm.yaml'] },
    'qemu privileged': { values: ['deploy/helm/examples/production.yaml', 'deploy/helm/examples/qemu-privileged.yaml'] },
    'monitoring on (Prometheus Operator CRDs)': { values: ['deploy/helm/examples/production.yaml'], apiVersions: ['monitoring.coreos.com/v1'] },
    'NATS cluster and external PostgreSQL (HA)': { values: ['deploy/helm/examples/production.yaml', 'deploy/helm/examples/ha.yaml'] },
    'Kubernetes integration (identity issuer, drain watcher)': { values: ['deploy/helm/examples/production.yaml', 'deploy/helm/examples/kube-integration.yaml'] },
  };
  const rendered = Object.fromEntries(Object.entries(sets).map(([name, o]) => [name, chart.render(o)]));
  const objects = (set: string) => rendered[set].objects;
  const find = (set: string, kind: string, component?: string) =>
    objects(set).filter((o) => o.kind === kind && (component === undefined || o.metadata?.labels?.['app.kubernetes.io/component'] === component));
  const one = (set: string, kind: string, component?: string) => {
    const found = find(set, kind, component);
    expect(found.map((o) => `${o.kind}/${o.metadata.name}`)).toHaveLength(1);
    return found[0];
  };
  const podSpecs = (set: string) =>
    objects(set)
      .filter((o) => ['Deployment', 'DaemonSet'].includes(o.kind))
      .map((o) => ({ component: o.metadata.labels['app.kubernetes.io/component'] as string, kind: o.kind as string, spec: o.spec.template.spec }));

  it.each(Object.keys(sets))('lints with helm lint --strict: %s', (set) => {
    expect(chart.lint(sets[set])).toEqual({ ok: true, output: expect.stringContaining('0 chart(s) failed') });
  });

  it.each(Object.keys(sets))('renders: %s', (set) => {
    expect(rendered[set].error).toBe('');
    expect(objects(set).length).toBeGreaterThan(10);
  });

  it('validates every rendered object of every set against the Kubernetes schemas, unknown fields rejected', () => {
    const items = Object.entries(rendered).flatMap(([set, r]) => r.objects.map((object) => ({ source: set, object })));
    expect(validateManifests(items)).toEqual([]);
    // and the validator does reject an unknown field and a wrong type (it is not vacuous)
    const service = one('default', 'Service', 'console');
    const bad = [
      { source: 'typo', object: { ...service, spec: { ...service.spec, selektor: {} } } },
      { source: 'type', object: { ...service, spec: { ...service.spec, ports: [{ port: 'http' }] } } },
    ];
    expect([...new Set(validateManifests(bad).map((p) => p.source))].sort()).toEqual(['type', 'typo']);
  });

  it('refuses values the schema does not allow (wrong types, unknown keys), saying where', () => {
    const r = chart.render({ values: ['deploy/helm/test-values/invalid.yaml'], set: ['auth.enabled=false'] });
    expect(r.objects).toEqual([]);
    expect(r.error).toContain("at '/scheduler/replicas': got string, want integer");
    expect(r.error).toMatch(/at '\/agent': additional properties 'drvier' not allowed/);
  });

  it('does not render without a way to check tokens, and says what to set', () => {
    expect(chart.render({}).error).toContain('auth: set auth.jwtSecret.existingSecret');
  });

  it('sets only variables the services read, and every service its common ones', () => {
    const bad: string[] = [];
    for (const set of Object.keys(sets)) {
      const env = objects(set).find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-env'));
      for (const { component, spec } of podSpecs(set)) {
        const app = component as App;
        if (kubeApps.includes(component as KubeApp)) {
          // no ConfigMap: only what the container sets, all of it read
          bad.push(...unread(component as KubeApp, spec.containers[0].env.map((e: { name: string }) => e.name)).map((m) => `${set}: ${m}`));
          continue;
        }
        for (const c of spec.containers) {
          const names = (c.env ?? []).map((e: { name: string }) => e.name);
          // a variable the service does not read is allowed only as a helper for $(NAME) substitution
          const helpers = names.filter((n: string) => (c.env ?? []).some((e: { value?: string }) => e.value?.includes(`$(${n})`)));
          bad.push(...unread(app, [...names.filter((n: string) => !helpers.includes(n)), ...Object.keys(env.data)]).map((m) => `${set}: ${m}`));
          for (const common of ['NATS_URL', 'SUBJECT_PREFIX', 'LOG_LEVEL', 'EVENTS_STREAM_REPLICAS']) expect(env.data[common]).toBeDefined();
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('deploys the console (the one URL) with an Ingress, routing to the services by their Services', () => {
    const deployment = one('existing secrets (production)', 'Deployment', 'console');
    const env = Object.fromEntries(deployment.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({ PORT: '3000', INVENTORY_URL: 'http://release-flexmig-inventory:3001', SCHEDULER_URL: 'http://release-flexmig-scheduler:3002', CPU_COMPAT_URL: 'http://release-flexmig-cpu-compat:3003' });
    const ingress = one('existing secrets (production)', 'Ingress', 'console');
    expect(ingress.spec.rules[0]).toMatchObject({ host: 'flexmig.example', http: { paths: [{ path: '/', backend: { service: { name: 'release-flexmig-console', port: { name: 'http' } } } }] } });
    expect(ingress.spec.tls).toEqual([{ hosts: ['flexmig.example'], secretName: 'flexmig-console-tls' }]);
  });

  it('gives every replicated service a PDB, topology spread, and startup, liveness and readiness probes on its health routes', () => {
    for (const component of ['console', 'inventory', 'scheduler', 'cpu-compat']) {
      const d = one('default', 'Deployment', component);
      expect(one('default', 'PodDisruptionBudget', component).spec.selector.matchLabels).toEqual(d.spec.selector.matchLabels);
      expect(d.spec.template.spec.topologySpreadConstraints.map((t: any) => t.topologyKey)).toContain('kubernetes.io/hostname');
      const c = d.spec.template.spec.containers[0];
      expect([c.startupProbe.httpGet.path, c.livenessProbe.httpGet.path, c.readinessProbe.httpGet.path]).toEqual(['/health/live', '/health/live', '/health/ready']);
    }
  });

  it('mounts a ServiceAccount token only where the pod calls the Kubernetes API (issuer, drain watcher)', () => {
    for (const set of Object.keys(sets)) {
      for (const sa of find(set, 'ServiceAccount')) expect(sa.automountServiceAccountToken).toBe(false);
      for (const { component, spec } of podSpecs(set)) {
        expect(spec.automountServiceAccountToken).toBe(kubeApps.includes(component as KubeApp));
        expect(find(set, 'ServiceAccount').map((sa) => sa.metadata.name)).toContain(spec.serviceAccountName);
      }
    }
  });

  it('gives each agent a token for the identity issuer only, and no Secret with other hosts\' identities', () => {
    const set = 'Kubernetes integration (identity issuer, drain watcher)';
    const spec = one(set, 'DaemonSet', 'agent').spec.template.spec;
    expect(spec.volumes.find((v: any) => v.name === 'identity').projected.sources).toEqual([
      { serviceAccountToken: { audience: 'flexmig-identity-issuer', expirationSeconds: 3600, path: 'token' } },
    ]);
    expect(spec.volumes.some((v: any) => v.name === 'nats-creds')).toBe(false);
    const env = Object.fromEntries(spec.containers[0].env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({ IDENTITY_ISSUER_URL: 'http://release-flexmig-identity-issuer:3020', IDENTITY_TOKEN_FILE: '/var/run/secrets/flexmig/identity/token' });
    expect(env.NATS_CREDS).toBeUndefined();
    // the issuer sees the agents' ServiceAccount and audience, and holds the agents' signing key only
    const issuer = one(set, 'Deployment', 'identity-issuer').spec.template.spec;
    const ienv = Object.fromEntries(issuer.containers[0].env.map((e: any) => [e.name, e.value]));
    expect(ienv).toMatchObject({ ISSUER_AUDIENCE: 'flexmig-identity-issuer', AGENT_NAMESPACE: 'flexmig', AGENT_SERVICE_ACCOUNT: 'release-flexmig-agent' });
    expect(issuer.volumes.find((v: any) => v.name === 'signing').secret).toMatchObject({ secretName: 'flexmig-identity-signing', items: [{ key: 'account-signing.nk', path: 'account-signing.nk' }] });
    // narrow RBAC: tokenreviews create (cluster), pods get (namespace); nodes watch and nodes/status patch
    const rules = (kind: string, component: string) => one(set, kind, component).rules;
    expect(rules('ClusterRole', 'identity-issuer')).toEqual([{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
    expect(rules('Role', 'identity-issuer')).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]);
    expect(rules('ClusterRole', 'drain-watcher')).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
    ]);
    // both at once is refused, saying which
    expect(chart.render({ values: ['deploy/helm/examples/production.yaml'], set: ['identityIssuer.enabled=true', 'identityIssuer.accountPublicKey=ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVGXOEWLWEYB3', 'identityIssuer.signingKey.existingSecret=x'] }).error).toContain(
      'agent.natsCredentials.existingSecret and identityIssuer.enabled: set one',
    );
  });

  it('makes Secrets only where no existingSecret names one, and mounts each service its own NATS identity only', () => {
    expect(find('existing secrets (production)', 'Secret')).toEqual([]);
    const made = find('secrets from files', 'Secret').map((s) => s.metadata.name).sort();
    expect(made).toEqual(['release-flexmig-database', 'release-flexmig-jwt', 'release-flexmig-nats-creds', 'release-flexmig-nats-tls', 'release-flexmig-tokens']);
    for (const set of ['existing secrets (production)', 'secrets from files']) {
      for (const { component, spec } of podSpecs(set).filter((p) => p.component !== 'agent')) {
        const creds = spec.volumes.find((v: any) => v.name === 'nats-creds');
        expect(creds.secret.items).toEqual([{ key: `${component}.creds`, path: `${component}.creds` }]);
        const env = Object.fromEntries(spec.containers[0].env.map((e: any) => [e.name, e.value]));
        expect(env.NATS_CREDS).toBe(`/var/run/secrets/flexmig/nats/${component}.creds`);
        expect(env.NATS_TLS_CA).toBe('/var/run/secrets/flexmig/nats-tls/ca.pem');
        expect(env.AUTH_JWT_SECRET_FILE).toBe('/var/run/secrets/flexmig/jwt/jwt.secret');
      }
    }
  });

  it('allows only the architecture\'s flows (NetworkPolicy)', () => {
    const policies = Object.fromEntries(find('qemu with KVM (device plugin)', 'NetworkPolicy').map((p) => [p.metadata.labels['app.kubernetes.io/component'], p.spec]));
    expect(Object.keys(policies).sort()).toEqual(['agent', 'console', 'cpu-compat', 'inventory', 'scheduler']);
    const egressPorts = (c: string) => policies[c].egress.flatMap((r: any) => r.ports.map((p: any) => p.port)).sort((a: number, b: number) => a - b);
    const ingressPorts = (c: string) => policies[c].ingress.flatMap((r: any) => r.ports.map((p: any) => p.port));
    expect(egressPorts('inventory')).toEqual([53, 53, 4222, 5432]);
    expect(egressPorts('scheduler')).toEqual([53, 53, 4222, 5432]);
    expect(egressPorts('cpu-compat')).toEqual([53, 53, 4222]);
    expect(egressPorts('console')).toEqual([53, 53, 3001, 3002, 3003, 4222]);
    expect(egressPorts('agent')).toEqual([53, 53, 4222, 49152]);
    // with the Kubernetes integration: agents reach the issuer, only agents do; the watcher reaches the API and two services
    const kube = Object.fromEntries(find('Kubernetes integration (identity issuer, drain watcher)', 'NetworkPolicy').map((p) => [p.metadata.labels['app.kubernetes.io/component'], p.spec]));
    const kubeEgress = (c: string) => kube[c].egress.flatMap((r: any) => r.ports.map((p: any) => p.port)).sort((a: number, b: number) => a - b);
    expect(kubeEgress('agent')).toEqual([53, 53, 3020, 4222, 49152]);
    expect(kubeEgress('identity-issuer')).toEqual([53, 53, 6443]);
    expect(kubeEgress('drain-watcher')).toEqual([53, 53, 3001, 3002, 6443]);
    expect(kube['identity-issuer'].ingress).toEqual([{ from: [{ podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/component': 'agent' }) } }], ports: [{ port: 3020, protocol: 'TCP' }] }]);
    expect(kube['drain-watcher'].ingress).toEqual([]);
    expect(kube.scheduler.ingress.some((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'drain-watcher'))).toBe(true);
    // only the console reaches the services; only the ingress controller (and Prometheus) the console
    for (const c of ['inventory', 'scheduler', 'cpu-compat']) {
      expect(policies[c].ingress.some((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'console'))).toBe(true);
    }
    expect(ingressPorts('console')).toEqual([3000, 3000]);
    // agents <-> agents on the whole migration port range
    const migration = policies.agent.ingress.find((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'agent'));
    expect(migration.ports).toEqual([{ port: 49152, endPort: 49215, protocol: 'TCP' }]);
  });

  it('renders ServiceMonitor, PodMonitor and PrometheusRule only when the cluster has their CRDs, alerting on the real metrics', () => {
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']) {
      expect(find('default', kind)).toEqual([]);
      expect(find('monitoring on (Prometheus Operator CRDs)', kind)).toHaveLength(1);
    }
    const rules = find('monitoring on (Prometheus Operator CRDs)', 'PrometheusRule')[0].spec.groups[0].rules;
    const exprs = Object.fromEntries(rules.map((r: any) => [r.alert, r.expr]));
    expect(Object.keys(exprs).sort()).toEqual([
      'FlexmigDowntimeOverLimit',
      'FlexmigEventsDeadLettered',
      'FlexmigHostsDown',
      'FlexmigHostsSilentAtOnce',
      'FlexmigInventoryEventsRefused',
      'FlexmigInventoryOutboxBacklog',
      'FlexmigMigrationNeedsAttention',
      'FlexmigOutboxBacklog',
      'FlexmigReconciliationStalled',
      'FlexmigSplitBrain',
      'FlexmigVmsOrphanedOrMissing',
    ]);
    // every metric an alert or the dashboard uses is one the services export
    const exported = new Set(
      ['apps/scheduler/src/metrics.ts', 'apps/inventory/src/hosts/hosts.service.ts', 'apps/inventory/src/reconciliation/reconciliation.service.ts', 'apps/inventory/src/events/event-outbox.ts'].flatMap((f) => [...read(f).matchAll(/name: '(flexmig_[a-z_]+)'/g)].map((m) => m[1])),
    );
    const dashboardJson = objects('default').find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard')).data['flexmig.json'];
    const used = [...`${Object.values(exprs).join('\n')}\n${dashboardJson}`.matchAll(/\b(flexmig_[a-z_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(5);
    expect(used.filter((m) => !exported.has(m))).toEqual([]);
    expect(exprs.FlexmigMigrationNeedsAttention).toContain('outcome="failed-needs-attention"');
    expect(exprs.FlexmigSplitBrain).toBe('max(flexmig_reconciliation_findings{kind="split-brain"}) > 0');
    // levels of the rows held, not counters whose per-type series begin at their first event (increase() misses it)
    expect(exprs.FlexmigEventsDeadLettered).toBe('max(flexmig_outbox_events_dead_lettered) > 0');
    expect(exprs.FlexmigInventoryEventsRefused).toBe('max(flexmig_inventory_outbox_events_refused) > 0');
    expect(exprs.FlexmigHostsSilentAtOnce).toBe('max(flexmig_inventory_hosts_silence_held) > 0');
    expect(exprs.FlexmigReconciliationStalled).toBe('sum(increase(flexmig_reconciliation_passes_total{result="ok"}[15m])) == 0');
    expect(JSON.parse(dashboardJson).panels.length).toBeGreaterThan(4);
  });

  it('runs qemu agents for production: OnDelete, state on the node, KVM without privilege from a device plugin, the port range', () => {
    const ds = one('qemu with KVM (device plugin)', 'DaemonSet', 'agent');
    expect(ds.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    const spec = ds.spec.template.spec;
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(spec.tolerations).toContainEqual({ key: 'flexmig.io/hypervisor', operator: 'Exists', effect: 'NoSchedule' });
    expect(spec.volumes.find((v: any) => v.name === 'state').hostPath).toEqual({ path: '/var/lib/flexmig', type: 'DirectoryOrCreate' });
    const c = spec.containers[0];
    expect(c.image).toBe('registry.example/flexmig:0.1.0-qemu');
    expect(c.resources.limits['devices.kubevirt.io/kvm']).toBe(1);
    expect(c.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(spec.securityContext.supplementalGroups).toEqual([993]);
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({ DRIVER: 'qemu', QEMU_MIGRATION_PORT_RANGE: '49152-49215', QEMU_RUN_DIR: '/var/lib/flexmig/qemu', AGENT_STATE_DIR: '/var/lib/flexmig/agent', QEMU_TLS_DIR: '/var/run/secrets/flexmig/qemu-tls' });
    expect(env.MIGRATION_ADDRESS).toBe('$(FLEXMIG_POD_IP):49152');
    const privileged = one('qemu privileged', 'DaemonSet', 'agent').spec.template.spec;
    expect(privileged.containers[0].securityContext).toEqual({ privileged: true });
    expect(privileged.volumes.find((v: any) => v.name === 'kvm').hostPath).toEqual({ path: '/dev/kvm', type: 'CharDevice' });
    // the sim agents keep rolling updates
    expect(one('default', 'DaemonSet', 'agent').spec.updateStrategy.type).toBe('RollingUpdate');
  });

  it('meets Pod Security "restricted" in every pod but the qemu agent, the only one elevated', () => {
    const violations: string[] = [];
    const elevated: string[] = [];
    for (const set of Object.keys(sets)) {
      for (const { component, spec } of podSpecs(set)) {
        const problems = restrictedViolations(spec);
        const where = `${set}: ${component}`;
        if (problems.length === 0) continue;
        if (component === 'agent' && set.startsWith('qemu')) elevated.push(where);
        else violations.push(...problems.map((p) => `${where}: ${p}`));
      }
    }
    expect(violations).toEqual([]);
    expect(elevated.sort()).toEqual(['qemu privileged: agent', 'qemu with KVM (device plugin): agent']);
    // the policy check itself catches what it must
    expect(restrictedViolations({ containers: [{ name: 'x', securityContext: { privileged: true } }] })).toEqual(
      expect.arrayContaining(['x: privileged', 'x: runAsNonRoot is not true', 'x: capabilities do not drop ALL', 'x: seccomp is not RuntimeDefault or Localhost']),
    );
  });

  it('sets the pings of every process and the mass-silence rule of inventory', () => {
    const env = objects('default').find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-env')).data;
    expect(env.NATS_PING_INTERVAL_MS).toBe('10000');
    const inventoryEnv = Object.fromEntries(one('default', 'Deployment', 'inventory').spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
    expect(inventoryEnv).toMatchObject({ HOST_MASS_SILENCE_SHARE: '0.55', HOST_MASS_SILENCE_MIN: '3' });
  });

  it('sets the events stream for a NATS cluster of three, and PostgreSQL TLS with the CA from a Secret', () => {
    const env = objects('NATS cluster and external PostgreSQL (HA)').find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-env')).data;
    expect(env).toMatchObject({ EVENTS_STREAM_REPLICAS: '3', EVENTS_MAX_AGE: '7d', EVENTS_MAX_BYTES: '10737418240' });
    expect(env.NATS_URL.split(',')).toHaveLength(3);
    for (const component of ['inventory', 'scheduler']) {
      const spec = one('NATS cluster and external PostgreSQL (HA)', 'Deployment', component).spec.template.spec;
      expect(spec.volumes.find((v: any) => v.name === 'postgresql-ca').secret).toEqual({ secretName: 'flexmig-postgresql-ca', items: [{ key: 'ca.pem', path: 'ca.pem' }] });
      expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'postgresql-ca', mountPath: '/var/run/secrets/flexmig/postgresql', readOnly: true });
    }
  });

  it('says in NOTES.txt that the services crash-loop until NATS and PostgreSQL answer', () => {
    expect(rendered.default.notes).toMatch(/CrashLoopBackOff[\s\S]*once both are reachable/);
  });
});

// ---- Dockerfile (no Docker engine here: its stages are read, not built) ----
describe('Dockerfile', () => {
  const stages = [...read('Dockerfile').matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$([\s\S]*?)(?=^FROM\s|(?![\s\S]))/gm)].map((m) => ({ from: m[1], name: m[2], body: m[3] }));

  it('has an agent-qemu stage: the runtime plus Debian\'s QEMU and the binutils that assemble the guest', () => {
    const qemu = stages.find((s) => s.name === 'agent-qemu');
    expect(qemu?.from).toBe('runtime');
    expect(qemu?.body).toMatch(/apt-get install[^\n]*qemu-system-x86[^\n]*binutils/);
    expect(qemu?.body).toContain('dist/apps/agent/main.js');
  });

  it('builds the runtime image when no --target is given (the last stage)', () => {
    expect(stages.at(-1)?.from).toBe('runtime');
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
