/**
 * The built CLI (`apps/cli/bin/flexmig.cjs`, what `npx flexmig` runs) against the real stack through its
 * one URL: the console (apps/console) in front of inventory, scheduler and cpu-compat, with two sim agents,
 * on a NATS server in operator mode and PostgreSQL (libs/testing/src/harness.ts). Only FLEXMIG_URL and
 * FLEXMIG_TOKEN tell the CLI where the API is.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { ReconciliationReportSchema, StartVm } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { freePort, Harness, testToken, waitFor } from '@flexmig/testing';

const root = path.resolve(__dirname, '../../..');
const bin = path.join(root, 'apps/cli/bin/flexmig.cjs');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('flexmig, the operator CLI (built), through the console', () => {
  // inventory reconciles every 500 ms (10 s by default), for the `reconciliation` test
  const h = new Harness({ hosts: [{ id: 'host-a', cpu: 'IvyBridge' }, { id: 'host-b', cpu: 'Westmere' }], inventory: { RECONCILE_INTERVAL_MS: '500' } });
  const configDir = mkdtempSync(path.join(tmpdir(), 'flexmig-cli-config-'));
  let env: Record<string, string>;

  const cli = (args: string[], extraEnv: Record<string, string | undefined> = {}): Promise<Run> =>
    new Promise((resolve) => {
      execFile(process.execPath, [bin, ...args], { env: { ...process.env, XDG_CONFIG_HOME: configDir, ...env, ...extraEnv } as NodeJS.ProcessEnv, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  const json = async (args: string[]) => {
    const r = await cli([...args, '-o', 'json']);
    expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
    return JSON.parse(r.stdout);
  };

  /** A CLI that runs until interrupted: its output until `until` finds what it waits for, then Ctrl-C, and its exit code. */
  const interruptWhen = (args: string[], until: (stdout: string) => boolean): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, XDG_CONFIG_HOME: configDir, ...env } });
      let stdout = '';
      let stderr = '';
      let sent = false;
      child.stdout.on('data', (c) => {
        stdout += c;
        if (!sent && until(stdout)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.stderr.on('data', (c) => (stderr += c));
      child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });

  beforeAll(async () => {
    const missing = [bin, ...['cli', 'console', 'inventory', 'scheduler', 'cpu-compat', 'agent'].map((a) => path.join(root, 'dist/apps', a, 'main.js'))].filter((f) => !existsSync(f));
    if (missing.length) throw new Error(`the CLI's e2e tests run the built apps, the console (apps/console) included: missing ${missing.join(', ')}: run \`npm run build\``);
    await h.start();
    await h.startService('console', 'console', {
      ...h.nats.serviceEnv('console'),
      INVENTORY_URL: h.url.inventory,
      SCHEDULER_URL: h.url.scheduler,
      CPU_COMPAT_URL: h.url['cpu-compat'],
    });
    env = { FLEXMIG_URL: h.url.console, FLEXMIG_TOKEN: await testToken('admin', 'cli-e2e') };
  }, 180_000);

  afterAll(async () => {
    await h.stop();
    rmSync(configDir, { recursive: true, force: true });
  });

  it('given the stack, when `hosts -o json` runs, then it parses to every host with its highest CPU mode, state, maintenance and CPU features', async () => {
    const hosts = await json(['hosts']);
    expect(hosts.map((x: any) => [x.id, x.state, x.maintenance, typeof x.maxImcMode]).sort()).toEqual([
      ['host-a', 'up', false, 'string'],
      ['host-b', 'up', false, 'string'],
    ]);
    // each with its feature list, as GET /api/v1/hosts/:id shows it (a page names it by digest only)
    for (const x of hosts) {
      expect(x.cpu.features).toEqual(expect.arrayContaining(['sse2']));
      expect(x.cpu).not.toHaveProperty('featureSet');
    }
    expect(hosts.find((x: any) => x.id === 'host-a').cpu.features.length).toBeGreaterThan(hosts.find((x: any) => x.id === 'host-b').cpu.features.length);
    const table = await cli(['hosts']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^HOST\s+HIGHEST MODE\s+CPU\s+STATE\s+MAINTENANCE\s+VMS\s+VCPUS USED\s+MEMORY USED\n/);
    expect(table.stdout).toMatch(/host-a\s+IvyBridge\S*\s/);
  });

  it('given a VM created with `vm create`, when `migrate --to --wait` runs, then it shows the steps and live progress, ends with the figures, and exits 0', async () => {
    const vm = await json(['vm', 'create', 'cli-e2e-vm', '--host', 'host-a', '--memory', '4096', '--vcpus', '1']);
    expect(vm).toMatchObject({ name: 'cli-e2e-vm', hostId: 'host-a', state: 'running', memoryMiB: 4096 });

    const r = await cli(['migrate', 'cli-e2e-vm', '--to', 'host-b', '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const id = /^migration ([0-9a-f-]{36}): VM [0-9a-f-]{36} from host-a to host-b/.exec(r.stdout)?.[1];
    expect(id).toBeDefined();
    // the steps as they end, from the live stream (the fallback would say it polls)
    expect(r.stdout).not.toContain('following the migration by polling');
    for (const step of ['1 verify-compatibility', '9 commit']) expect(r.stdout).toMatch(new RegExp(`step ${step}: completed in `));
    // live progress of the memory transfer: step, pass, bar, rate, remaining, expected downtime
    expect(r.stdout).toMatch(/step \d  pass \d+  \[[#.]{30}\] +\d+\.\d%  \S+ \S+\/s  \S+ \S+ left  dirty \S+ \S+\/s  expected downtime /);
    // the figures
    expect(r.stdout).toContain(`migration ${id}: completed`);
    expect(r.stdout).toMatch(/total time: +\S+/);
    expect(r.stdout).toMatch(/downtime: +\d/);
    expect(r.stdout).toMatch(/passes: +\d+/);

    const vms = await json(['vms', '--host', 'host-b']);
    expect(vms.map((v: any) => v.name)).toContain('cli-e2e-vm');
    // each host counts its VMs as they are after the move: the table from the hosts' own counts
    const counts = Object.fromEntries((await json(['hosts'])).map((x: any) => [x.id, x.vmCount]));
    expect(counts).toEqual({ 'host-a': 0, 'host-b': vms.length });
    expect((await cli(['hosts'])).stdout).toMatch(new RegExp(`\\nhost-b\\s.*\\s(yes|no)\\s+${vms.length}\\s`));
    expect((await cli(['clusters'])).stdout).toMatch(/\sfaults\s+\S+\s+2\n/);
    const done = await json(['migrations', '--state', 'completed']);
    expect(done.find((m: any) => m.id === id)).toMatchObject({ state: 'completed', targetHostId: 'host-b', result: { passes: expect.any(Number) } });
  });

  it('given `migrate --wait -o json`, then stdout is only the ended migration, as JSON (progress goes to stderr)', async () => {
    const r = await cli(['migrate', 'cli-e2e-vm', '--to', 'host-a', '--wait', '-o', 'json']);
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m).toMatchObject({ state: 'completed', sourceHostId: 'host-b', targetHostId: 'host-a', result: { downtimeMs: expect.any(Number) } });
    expect(r.stderr).toContain(`migration ${m.id}: VM`);
  });

  it('given `events --types migration.completed -o json`, then one JSON object per line, the migrations above among them', async () => {
    const r = await cli(['events', '--types', 'migration.completed', '-o', 'json']);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (const e of events) expect(e).toMatchObject({ id: expect.stringMatching(/^\d+$/), type: 'migration.completed', data: { type: 'migration.completed' } });
  });

  it('given `migrations --watch -o json`, then the list at once, and Ctrl-C ends it with 130 saying the migrations go on', async () => {
    const r = await interruptWhen(['migrations', '--watch', '-o', 'json'], (out) => out.trimEnd().endsWith(']'));
    expect(r.code).toBe(130);
    expect(JSON.parse(r.stdout).map((m: any) => m.state)).toEqual(['completed', 'completed']);
    expect(r.stderr).toContain('interrupted; what was asked goes on');
  });

  it('given `migrations --limit 1`, then the newest only, and stderr says more were left out; --all and a limit above the count, every one and no note', async () => {
    const all = await json(['migrations', '--all']);
    expect(all).toHaveLength(2);
    const one = await cli(['migrations', '--limit', '1', '-o', 'json']);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).map((m: any) => m.id)).toEqual([all[0].id]);
    expect(one.stderr).toContain('(the 1 newest migrations; --limit N for more, --all for every one)');
    const enough = await cli(['migrations', '--limit', '2', '-o', 'json']);
    expect(JSON.parse(enough.stdout)).toEqual(all);
    expect(enough.stderr).not.toContain('newest');
    expect((await cli(['migrations', '--limit', '0'])).code).toBe(2);
  });

  it('given `events --follow --since`, then the events after that id and the new ones as they come', async () => {
    const lines = (await cli(['events', '-o', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const since = lines.at(-1).id;
    const follow = interruptWhen(['events', '--follow', '--since', since, '--types', 'vm.*', '-o', 'json'], (out) => out.includes('"type":"vm.started"'));
    const vm = await json(['vm', 'create', 'cli-e2e-followed', '--host', 'host-b', '--memory', '256']);
    const r = await follow;
    expect(r.code).toBe(130);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.every((e: any) => e.type.startsWith('vm.') && Number(e.id) > Number(since))).toBe(true);
    // after `since` the only VM event is the start of this one
    expect(events.map((e: any) => [e.type, e.data.subject])).toEqual([['vm.started', vm.id]]);
  });

  it('given `cluster imc auto`, then the probe from the highest mode down, what each host lacked, and the mode it set', async () => {
    const clusters = await json(['clusters']);
    expect(clusters.map((c: any) => c.name)).toEqual(['faults']);
    const r = await cli(['cluster', 'imc', 'auto', 'faults']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    // from the highest mode down; IvyBridge fails only on host-b (a Westmere), which lacks AVX among others
    expect(r.stdout).toMatch(/^ 1\. \S+: 2 host\(s\) fail\n {6}host-a: lacks \S/);
    expect(r.stdout).toMatch(/\n *\d+\. IvyBridge: 1 host\(s\) fail\n {6}host-b: lacks avx, /);
    expect(r.stdout).toMatch(/\n *\d+\. Westmere: every host passes\n\nmode set to Westmere\n$/);
    const imc = await json(['cluster', 'imc', 'show', 'faults']);
    expect(imc).toMatchObject({ mode: 'Westmere' });
  });

  it('given `cluster imc verify|set`, then the hosts by verdict and what they lack (--hosts: each); a mode a host lacks is refused (3) and nothing changes; unset clears it', async () => {
    const v = await cli(['cluster', 'imc', 'verify', 'faults', 'SandyBridge']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^mode SandyBridge: not every host passes\n\nPASS +WHY NOT +HOSTS +WHICH\nyes +- +1 +host-a\nno +lacks avx, rdtscp, xsave, xsaveopt +1 +host-b\n$/);
    const each = await cli(['cluster', 'imc', 'verify', 'faults', 'SandyBridge', '--hosts']);
    expect(each.stdout).toMatch(/^mode SandyBridge: not every host passes\n\nHOST +PASS +WHY\nhost-a +yes +-\nhost-b +no +lacks avx, rdtscp, xsave, xsaveopt\n$/);
    const refused = await cli(['cluster', 'imc', 'set', 'faults', 'SandyBridge']);
    expect([refused.code, refused.stderr]).toEqual([3, expect.stringContaining('(422 CPU_INCOMPATIBLE)')]);
    expect(await json(['cluster', 'imc', 'show', 'faults'])).toMatchObject({ mode: 'Westmere' });
    const unset = await cli(['cluster', 'imc', 'set', 'faults', 'unset']);
    expect([unset.code, unset.stdout]).toEqual([0, 'mode changed from Westmere to (unset)\n']);
  });

  it('given `cluster plan`, then the mode all hosts pass, who holds it down, and the mode without each host (grouped, with their states; --hosts: each)', async () => {
    const plan = await json(['cluster', 'plan', 'faults']);
    expect(plan).toMatchObject({ mode: 'Westmere', holdingDown: ['host-b'] });
    const r = await cli(['cluster', 'plan', 'faults']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mode all hosts pass: Westmere\n[\s\S]*holding it down: +host-b\n\nOWN HIGHEST MODE +CLUSTER MODE WITHOUT ANY ONE OF THEM +HOSTS +STATES +WHICH\nIvyBridge\S* +Westmere +1 +1 up +host-a\nWestmere +IvyBridge\S* +1 +1 up +host-b\n$/);
    const each = await cli(['cluster', 'plan', 'faults', '--hosts']);
    expect(each.stdout).toMatch(/\n\nHOST +OWN HIGHEST MODE +CLUSTER MODE WITHOUT IT\nhost-a +IvyBridge\S* +Westmere\nhost-b +Westmere +IvyBridge\S*\n$/);
  });

  it('given `evacuate --wait`, then progress per VM, and the host is empty in the end', async () => {
    await json(['vm', 'create', 'cli-e2e-evac', '--host', 'host-a', '--memory', '512']);
    const r = await cli(['evacuate', 'host-a', '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/evacuation \S+ of host-a: completed \(2 moved, 0 moving, 0 failed, 0 not moved, of 2\)/);
    expect(r.stdout).toMatch(/cli-e2e-evac\s+moved\s+completed\s+host-b/);
    expect(r.stdout).not.toContain('following the evacuation by polling'); // the console's live stream of the evacuation
    expect(await json(['vms', '--host', 'host-a'])).toEqual([]);
    const hosts = await json(['hosts']);
    expect(hosts.find((x: any) => x.id === 'host-a').maintenance).toBe(true);
  });

  describe('exit codes', () => {
    it('given a host that does not exist, then 3 (refused) with what failed, why and what to do', async () => {
      const r = await cli(['vm', 'create', 'nowhere', '--host', 'host-zz']);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/^flexmig: POST \/api\/v1\/vms was refused \(404 NOT_FOUND\): .*host-zz.*What to do: /);
    });

    it('given a migration that has ended, when it is cancelled, then 3 (conflict) saying why', async () => {
      const [done] = await json(['migrations', '--state', 'completed']);
      const r = await cli(['cancel', done.id]);
      expect([r.code, r.stderr]).toEqual([3, expect.stringMatching(/^flexmig: POST \/api\/v1\/migrations\/\S+\/cancel was refused \(409 CONFLICT\): migration \S+ cannot be cancelled: /)]);
    });

    it('given no token, then 3 with how to give one', async () => {
      const r = await cli(['vms'], { FLEXMIG_TOKEN: undefined });
      expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('(401 UNAUTHENTICATED)')]);
      expect(r.stderr).toContain('FLEXMIG_TOKEN');
    });

    it('given a viewer token, when it migrates, then 3 (forbidden: the role)', async () => {
      const r = await cli(['migrate', 'cli-e2e-vm', '--to', 'host-a'], { FLEXMIG_TOKEN: await testToken('viewer', 'cli-viewer') });
      expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('(403 FORBIDDEN)')]);
    });

    it('given a URL nobody listens on, then 4 (unreachable) saying to set FLEXMIG_URL', async () => {
      const r = await cli(['hosts'], { FLEXMIG_URL: `http://127.0.0.1:${await freePort()}` });
      expect([r.code, r.stderr]).toEqual([4, expect.stringContaining('Set FLEXMIG_URL')]);
    });

    it('given a wrong command line, then 2 (usage)', async () => {
      for (const args of [['hostz'], ['vm', 'create', 'x', '--host', 'h', '--memory', '0'], ['hosts', '-o', 'xml'], ['completion', 'fish']]) {
        expect([args, (await cli(args)).code]).toEqual([args, 2]);
      }
    });
  });

  it('given the URL and token in a config file, then the CLI uses them; the environment wins over the file', async () => {
    const file = path.join(configDir, 'flexmig', 'config.yaml');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `url: ${h.url.console}\ntoken: ${env.FLEXMIG_TOKEN}\n`);
    const viaFile = await cli(['clusters', '-o', 'yaml'], { FLEXMIG_URL: undefined, FLEXMIG_TOKEN: undefined });
    expect([viaFile.code, viaFile.stdout]).toEqual([0, expect.stringContaining('name: faults')]);
    const envWins = await cli(['clusters'], { FLEXMIG_URL: `http://127.0.0.1:${await freePort()}`, FLEXMIG_TOKEN: undefined });
    expect(envWins.code).toBe(4);
  });

  it('given `completion bash`, then a script bash accepts', async () => {
    const r = await cli(['completion', 'bash']);
    expect(r.code).toBe(0);
    const check = await new Promise<number>((resolve) => {
      const child = execFile('bash', ['-n'], (err) => resolve(err ? 1 : 0));
      child.stdin!.end(r.stdout);
    });
    expect(check).toBe(0);
    expect(r.stdout).toContain('"cluster imc") words="show set verify auto');
  });
  // last: it leaves a VM on host-b that inventory does not know
  it('given a VM an agent runs behind inventory\'s back, then `reconciliation` shows it orphaned, and -o json is the whole report', async () => {
    const stray = randomUUID();
    const bus = await NatsBus.connect({ url: h.nats.url, prefix: h.prefix, name: 'cli-e2e-stray', credsFile: h.nats.creds('inventory') });
    try {
      await bus.request(StartVm, { vm: { id: stray, name: 'stray', memoryMiB: 256, vcpus: 1, cpuBaseline: 'Westmere' } }, { params: { hostId: 'host-b' } });
    } finally {
      await bus.close();
    }
    const report = await waitFor('the stray VM in the report', async () => {
      const r = ReconciliationReportSchema.parse(await json(['reconciliation']));
      return r.items.some((f) => f.vmId === stray) && r;
    }, { timeoutMs: 20_000, intervalMs: 500 });
    expect(report.nextCursor).toBeNull();
    expect(report.items.find((f) => f.vmId === stray)).toMatchObject({ kind: 'orphaned', hostId: 'host-b', recordedHostId: null });
    expect(report.hostsChecked + report.hostsUnknownCount).toBe(2);

    const table = await cli(['reconciliation', '--kind', 'orphaned']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^last pass: +\S+ \(every 500 ms\)$/m);
    expect(table.stdout).toMatch(new RegExp(`^orphaned +${stray} +host-b +running +no record `, 'm'));
    const none = await cli(['reconciliation', '--kind', 'split-brain']);
    expect(none.stdout.trim().split('\n').at(-1)).toBe("no split-brain VMs: the agents' reports match inventory");
    expect((await cli(['reconciliation', '--kind', 'lost'])).code).toBe(2);
  });
});
