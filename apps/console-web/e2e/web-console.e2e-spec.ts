/**
 * The web console in a real browser: Debian's chromium, headless, driven by playwright-core, against the
 * built console (dist/apps/console serving dist/apps/console-web) in front of the real services and two sim
 * agents on a NATS server of the suite's own in operator mode and PostgreSQL. A person's path: log in with a
 * token, look at the clusters and hosts, create a VM, migrate it and watch it complete.
 *
 * Screenshots go to a temporary folder; with FLEXMIG_WRITE_SCREENSHOTS=1 they replace docs/screenshots/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { StartVm } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { freePort, httpJson, ServiceProcess, startTestDatabase, startTestNats, testToken, waitFor, type TestDatabase, type TestNats } from '@flexmig/testing';

/** Debian's chromium (apt-get install -y chromium), or CHROMIUM_PATH. */
function findChromium(): string | undefined {
  if (process.env.CHROMIUM_PATH) return existsSync(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined;
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this name
    }
  }
  return undefined;
}

const chromiumPath = findChromium();
const missing = 'no chromium to drive: install Debian\'s (apt-get install -y chromium; .ci/run does when it is missing) or set CHROMIUM_PATH';
if (!chromiumPath && process.env.CI !== 'true') console.warn(`SKIPPED the web console's browser test: ${missing}. In CI (CI=true) this is a failure.`);
// In CI a missing browser fails the run; on a developer's machine the test is skipped, loudly (above).
const describeInBrowser = chromiumPath || process.env.CI === 'true' ? describe : describe.skip;

const repoRoot = path.resolve(__dirname, '../../..');
const shots = process.env.FLEXMIG_WRITE_SCREENSHOTS === '1' ? path.join(repoRoot, 'docs/screenshots') : mkdtempSync(path.join(tmpdir(), 'flexmig-web-shots-'));

describeInBrowser('the web console in a browser', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let browser: Browser;
  let page: Page;
  const procs: ServiceProcess[] = [];
  const url: Record<string, string> = {};
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-web-agents-'));
  const api = (method: string, route: string, body?: unknown) => httpJson(url.console, method, route, body);
  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`) });

  beforeAll(async () => {
    if (!chromiumPath) throw new Error(`CI=true and ${missing}`);
    mkdirSync(shots, { recursive: true });
    nats = await startTestNats('webconsole', { auth: true });
    db = await startTestDatabase('webconsole');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    const start = async (name: string, app: string, env: Record<string, string>) => {
      const port = await freePort();
      url[name] = `http://127.0.0.1:${port}`;
      procs.push(await new ServiceProcess(app, { ...common, ...env, PORT: String(port) }, port, name).start());
    };
    // inventory reconciles every 500 ms (10 s by default), for the reconciliation page's test
    for (const app of ['cpu-compat', 'inventory', 'scheduler'] as const) await start(app, app, { ...nats.serviceEnv(app), ...(app === 'inventory' ? { RECONCILE_INTERVAL_MS: '500' } : {}) });
    for (const [id, cpu] of [['host-a', 'Westmere'], ['host-c', 'IvyBridge']]) {
      // real time (4 GiB at the sim's 1.25 GiB/s: seconds of copying), so that the browser sees the copy in progress
      await start(id, 'agent', { ...(await nats.agentEnv(id)), HOST_ID: id, CLUSTER_NAME: 'web', SIM_CPU: cpu, AGENT_STATE_DIR: stateDir, SIM_TIME_SCALE: '1', HEARTBEAT_INTERVAL_MS: '500' });
    }
    await start('console', 'console', { ...nats.serviceEnv('console'), INVENTORY_URL: url.inventory, SCHEDULER_URL: url.scheduler, CPU_COMPAT_URL: url['cpu-compat'] });
    await waitFor('both hosts up', async () => (await api('GET', '/api/v1/hosts')).body.items?.filter((h: any) => h.state === 'up').length === 2, { timeoutMs: 30_000 });
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const p of procs.reverse()) await p.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    if (process.env.FLEXMIG_WRITE_SCREENSHOTS !== '1') rmSync(shots, { recursive: true, force: true });
  });

  it('serves the built console at / with the SPA fallback and cache headers: index.html never cached, hashed assets for good', async () => {
    const index = await fetch(`${url.console}/`);
    const html = await index.text();
    expect([index.status, index.headers.get('cache-control')]).toEqual([200, 'no-cache']);
    const asset = html.match(/src="(\/assets\/main-[A-Z0-9]+\.js)"/)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${url.console}${asset}`);
    expect([js.status, js.headers.get('cache-control'), js.headers.get('content-type')]).toEqual([200, 'public, max-age=31536000, immutable', expect.stringContaining('javascript')]);
    const clientRoute = await fetch(`${url.console}/migrations/some-id`);
    expect([clientRoute.status, await clientRoute.text()]).toEqual([200, html]);
    // the API's paths are never the console's page
    const api404 = await fetch(`${url.console}/api/v2/nothing`);
    expect(api404.status).toBe(404);
  });

  it('given no token, it asks for one; a wrong one is refused with the reason; a 401 later sends back to the login with it', async () => {
    await page.goto(`${url.console}/hosts`);
    await page.getByLabel('bearer token').waitFor();
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.getByLabel('bearer token').fill('not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('The token was not accepted').waitFor();
    expect(await page.locator('.pf-v6-c-alert').innerText()).toContain('401');

    // a token that expired while the page was open: the next call's 401 ends the session, with the reason
    await page.evaluate(() => sessionStorage.setItem('flexmig.token', 'expired'));
    await page.goto(`${url.console}/hosts`);
    await page.getByText('You were logged out').waitFor();
    expect(new URL(page.url()).pathname).toBe('/login');
  });

  it('given an admin token, it shows the clusters: the IMC mode, auto with each mode tried, its CPUs and plan a row per group of hosts, and a link to its hosts', async () => {
    await page.getByLabel('bearer token').fill(await testToken('admin'));
    await page.getByRole('button', { name: 'Log in' }).click();
    // back where the 401 happened
    await page.waitForURL('**/hosts');
    await page.getByRole('link', { name: 'Clusters' }).click();
    await page.getByText('Effective (new VMs get)').waitFor();
    await page.getByRole('button', { name: 'Run auto (sets the mode)' }).click();
    const tries = page.getByRole('list', { name: 'modes tried' });
    await tries.waitFor();
    // host-a (Westmere) holds the cluster down: the modes above it were tried, and what it lacked said
    expect(await tries.innerText()).toMatch(/IvyBridge: 1 host\(s\) fail\s+host-a: lacks /);
    expect(await tries.innerText()).toContain('Westmere: every host passes');
    await page.getByText('mode set to Westmere').waitFor();
    // the tables have a row per group of hosts alike (a CPU, a plan); here each host is a group of its own
    const rowsOf = async (name: string, n: number) => {
      const rows = page.getByRole('grid', { name }).or(page.getByRole('table', { name })).locator('tbody tr');
      await waitFor(`${n} rows in "${name}"`, async () => (await rows.count()) === n, { timeoutMs: 10_000 });
      return (await rows.allInnerTexts()).map((r) => r.replace(/\s+/g, ' ').trim());
    };
    expect(await rowsOf('CPUs of the cluster', 2)).toEqual([expect.stringMatching(/ Westmere 1 1 up host-a$/), expect.stringMatching(/ IvyBridge 1 1 up host-c$/)]);
    // host-a's Westmere holds the mode down: without it, host-c's IvyBridge; without host-c, Westmere
    expect(await rowsOf('plan of the hosts', 2)).toEqual(['Westmere IvyBridge 1 1 up host-a', 'IvyBridge Westmere 1 1 up host-c']);
    await shot('clusters');

    // every host of the cluster, a page at a time, is the hosts page's, reached with the cluster picked
    const cluster = (await api('GET', '/api/v1/clusters')).body.items.find((c: { name: string }) => c.name === 'web') as { id: string };
    const filtered = page.waitForRequest((r) => new URL(r.url()).pathname === '/api/v1/hosts' && new URL(r.url()).searchParams.get('clusterId') === cluster.id, { timeout: 10_000 });
    await page.getByRole('link', { name: 'its hosts' }).click();
    await page.waitForURL(`**/hosts?cluster=${cluster.id}`);
    await filtered; // the server filters the page by the cluster
    const hosts = page.getByLabel('hosts', { exact: true });
    await hosts.locator('tr[data-row="host-a"]').waitFor();
    expect(await hosts.locator('tr[data-row="host-c"]').count()).toBe(1);
    // the filter shows the cluster once the clusters, its options, have loaded (the page asked by the URL's before)
    const picked = page.getByLabel('cluster', { exact: true });
    await waitFor(`the cluster filter showing ${cluster.id}`, async () => (await picked.inputValue()) === cluster.id, { timeoutMs: 10_000 });
  });

  it('lists the hosts with their highest mode, state, maintenance and capacity; the maintenance toggle works', async () => {
    await page.getByRole('link', { name: 'Hosts' }).click();
    const table = page.getByLabel('hosts', { exact: true });
    await table.locator('tr[data-row="host-a"]').waitFor();
    const rowA = await table.locator('tr[data-row="host-a"]').innerText();
    expect(rowA).toContain('Westmere');
    expect(rowA).toContain('up');
    const toggle = page.getByLabel('maintenance of host-c');
    // the switch shows what the server confirmed, and is usable again, before the next click
    const settled = (on: boolean) => async () => (await toggle.isChecked()) === on && (await toggle.isEnabled());
    await toggle.click({ force: true });
    await waitFor('host-c in maintenance', async () => (await api('GET', '/api/v1/hosts/host-c')).body.maintenance === true, { timeoutMs: 10_000 });
    await waitFor('the switch of host-c on and enabled', settled(true), { timeoutMs: 10_000 });
    await toggle.click({ force: true });
    await waitFor('host-c out of maintenance', async () => (await api('GET', '/api/v1/hosts/host-c')).body.maintenance === false, { timeoutMs: 10_000 });
    await waitFor('the switch of host-c off and enabled', settled(false), { timeoutMs: 10_000 });
  });

  it('creates a VM from the console, migrates it from the console, and shows its progress and steps to completed', async () => {
    await page.getByRole('link', { name: 'VMs' }).click();
    await page.locator('#vm-name').fill('web-vm');
    await page.locator('#vm-host').fill('host-c');
    await page.locator('#vm-memory').fill('4096');
    await page.locator('#vm-vcpus').fill('2');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByText('VM web-vm started on host-c').waitFor();
    const vm = (await api('GET', '/api/v1/vms')).body.items.find((v: any) => v.name === 'web-vm');
    expect(vm).toMatchObject({ hostId: 'host-c', state: 'running' });

    await page.getByRole('button', { name: 'migrate web-vm' }).click();
    // the target field suggests the other hosts of the VM's cluster that are up: here host-a
    await page.locator('#migrate-target-suggested option[value="host-a"]').waitFor({ state: 'attached' });
    expect(await page.locator('#migrate-target-suggested option').evaluateAll((os) => os.map((o) => o.getAttribute('value')))).toEqual(['host-a']);
    await page.locator('#migrate-target').fill('host-a');
    await page.getByRole('button', { name: 'Start migration' }).click();
    await page.waitForURL('**/migrations/*');
    const migrationId = new URL(page.url()).pathname.split('/').pop();

    // live: a progress sample from the stream moves the bar while memory is copied
    await page.getByLabel('live figures').waitFor({ timeout: 60_000 });
    await shot('migration-in-progress');

    const bar = page.getByRole('progressbar');
    await page.getByRole('progressbar', { name: 'completed' }).waitFor({ timeout: 120_000 });
    expect(await bar.getAttribute('aria-valuenow')).toBe('100');
    for (let step = 1; step <= 9; step++) await page.getByLabel(new RegExp(`^step ${step} .*: completed$`)).waitFor();
    await page.getByLabel('result').getByText('Downtime').waitFor();
    await shot('migration-completed');

    const m = (await api('GET', `/api/v1/migrations/${migrationId}`)).body;
    expect(m).toMatchObject({ state: 'completed', vmId: vm.id, targetHostId: 'host-a' });
    expect((await api('GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('host-a');

    // the hosts page counts it on its new host
    await page.getByRole('link', { name: 'Hosts' }).click();
    const rowA = page.getByLabel('hosts', { exact: true }).locator('tr[data-row="host-a"]');
    await rowA.getByRole('link', { name: '1' }).waitFor();
    expect(await rowA.innerText()).toContain('4 GiB / 64 GiB');
    await shot('hosts');
  });

  it('evacuates a host from the hosts page and shows each VM moved', async () => {
    await page.getByLabel('hosts', { exact: true }).locator('tr[data-row="host-a"]').getByRole('button', { name: 'Evacuate' }).click();
    await page.waitForURL('**/evacuations/*');
    const evacuationId = new URL(page.url()).pathname.split('/').pop();
    const row = page.getByLabel('VMs of the evacuation', { exact: true }).getByRole('row', { name: /web-vm/ });
    await row.getByText('moved', { exact: true }).waitFor({ timeout: 120_000 });
    expect(await row.innerText()).toContain('host-c');
    await page.getByText('1 moved, 0 moving, 0 failed, 0 not moved, of 1').waitFor();
    await shot('evacuation');
    expect((await api('GET', `/api/v1/evacuations/${evacuationId}`)).body).toMatchObject({ hostId: 'host-a', state: 'completed', counts: { moved: 1, total: 1 } });
  });
  it('shows the VMs and the hosts a page at a time, found by name or id on the server, never the whole list', async () => {
    const lists: URLSearchParams[] = [];
    const seen = (r: { url(): string }) => {
      const u = new URL(r.url());
      if (u.pathname === '/api/v1/vms' || u.pathname === '/api/v1/hosts') lists.push(new URLSearchParams([['list', u.pathname], ...u.searchParams]));
    };
    const cluster = (await api('GET', '/api/v1/clusters')).body.items.find((c: { name: string }) => c.name === 'web') as { id: string };
    page.on('request', seen);
    try {
      await page.getByRole('link', { name: 'VMs' }).click();
      const vms = page.getByLabel('VMs', { exact: true });
      const webVm = (await api('GET', '/api/v1/vms?name=web-vm')).body.items[0] as { id: string };
      await vms.locator(`tr[data-row="${webVm.id}"]`).waitFor();
      // a name is looked up by the server: the one VM of that name, or none
      const find = page.getByLabel('find a VM by name');
      await find.fill('web-vm');
      await find.press('Enter');
      await waitFor('only web-vm shown', async () => (await vms.locator('tbody tr').count()) === 1 && (await vms.locator(`tr[data-row="${webVm.id}"]`).count()) === 1, { timeoutMs: 10_000 });
      await find.fill('no-such-vm');
      await find.press('Enter');
      await page.getByText('No VM named no-such-vm').waitFor();
      // the creation form's host field suggests the hosts that take VMs (one page of them) and has picked the
      // first: host-a is in maintenance since its evacuation, so host-c only
      expect((await api('GET', '/api/v1/hosts/host-a')).body.maintenance).toBe(true);
      await page.locator('#vm-host-suggested option[value="host-c"]').waitFor({ state: 'attached' });
      expect(await page.locator('#vm-host-suggested option').evaluateAll((os) => os.map((o) => o.getAttribute('value')))).toEqual(['host-c']);
      expect(await page.locator('#vm-host').inputValue()).toBe('host-c');

      await page.getByRole('link', { name: 'Hosts' }).click();
      const hosts = page.getByLabel('hosts', { exact: true });
      await hosts.locator('tr[data-row="host-a"]').waitFor();
      const findHost = page.getByLabel('find a host by id');
      await findHost.fill('host-c');
      await findHost.press('Enter');
      await waitFor('only host-c shown', async () => (await hosts.locator('tbody tr').count()) === 1 && (await hosts.locator('tr[data-row="host-c"]').count()) === 1, { timeoutMs: 10_000 });
      expect(await hosts.locator('tr[data-row="host-c"]').innerText()).toContain('IvyBridge');
      await findHost.fill('host-zz');
      await findHost.press('Enter');
      await page.getByText('No host host-zz').waitFor();
      await findHost.fill('');
      await findHost.press('Enter');
      // the cluster filter is the server's
      await page.getByLabel('cluster', { exact: true }).selectOption(cluster.id);
      await hosts.locator('tr[data-row="host-a"]').waitFor();
      expect(await hosts.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-row')))).toEqual(['host-a', 'host-c']);
    } finally {
      page.off('request', seen);
    }
    // every list read was one page (the tables' 20; the host field's 100 suggestions), with its filter
    const pageSizes = (q: URLSearchParams) => (q.get('list') === '/api/v1/hosts' ? ['20', '100'] : ['20']);
    expect(lists.filter((q) => !pageSizes(q).includes(q.get('limit') ?? 'none')).map(String)).toEqual([]);
    const asked = (list: string, filter: string, value: string) => lists.some((q) => q.get('list') === list && q.get(filter) === value && q.get('limit') === '20');
    expect([asked('/api/v1/vms', 'name', 'web-vm'), asked('/api/v1/hosts', 'clusterId', cluster.id)]).toEqual([true, true]);
  });

  it('shows the migrations and the evacuations a page at a time, newest first, the next page by the page\'s cursor', async () => {
    const real = (await api('GET', '/api/v1/migrations?limit=20')).body.items as { id: string }[];
    expect(real.length).toBeGreaterThanOrEqual(2); // the console's migration and the evacuation's
    await page.getByRole('link', { name: 'Migrations' }).click();
    const table = page.getByLabel('migrations', { exact: true });
    await table.locator(`tr[data-row="${real[0].id}"]`).waitFor();
    expect(await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-row')))).toEqual(real.map((m) => m.id));
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    // the state filter is the server's: none is queued now
    await page.getByLabel('state', { exact: true }).selectOption('queued');
    await page.getByText('No queued migrations').waitFor();
    await page.getByLabel('state', { exact: true }).selectOption('');
    await table.locator(`tr[data-row="${real[0].id}"]`).waitFor();

    // 45 migrations, from a stand-in for the scheduler's list: the table asks for one page at a time
    const fake = Array.from({ length: 45 }, (_, i) => ({ ...real[0], id: `00000000-0000-4000-8000-${String(45 - i).padStart(12, '0')}` }));
    const asked: string[] = [];
    const isList = (u: URL) => u.pathname === '/api/v1/migrations';
    await page.route(isList, (route) => {
      const q = new URL(route.request().url()).searchParams;
      asked.push(q.toString());
      const from = q.get('cursor') ? fake.findIndex((m) => m.id === q.get('cursor')) + 1 : 0;
      const items = fake.slice(from, from + Number(q.get('limit')));
      return route.fulfill({ json: { items, nextCursor: from + items.length < fake.length ? items.at(-1)!.id : null } });
    });
    try {
      await page.getByRole('link', { name: 'Evacuations' }).click();
      const evacuation = (await api('GET', '/api/v1/evacuations')).body.items[0] as { id: string };
      await page.getByLabel('evacuations', { exact: true }).locator(`tr[data-row="${evacuation.id}"]`).waitFor();
      await page.getByRole('link', { name: 'Migrations' }).click();
      const shown = page.getByLabel('migrations shown');
      await table.locator(`tr[data-row="${fake[0].id}"]`).waitFor();
      expect(await shown.innerText()).toBe('1–20');
      await page.getByRole('button', { name: 'Next page' }).click();
      await table.locator(`tr[data-row="${fake[20].id}"]`).waitFor();
      expect(await shown.innerText()).toBe('21–40');
      await page.getByRole('button', { name: 'Next page' }).click();
      await table.locator(`tr[data-row="${fake[44].id}"]`).waitFor();
      expect(await shown.innerText()).toBe('41–45');
      expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
      await page.getByRole('button', { name: 'Previous page' }).click();
      await table.locator(`tr[data-row="${fake[39].id}"]`).waitFor();
      expect(await shown.innerText()).toBe('21–40');
      // every request was one page of 20: the first, then each after the last row of the page before it
      expect(new Set(asked)).toEqual(new Set(['limit=20', `limit=20&cursor=${fake[19].id}`, `limit=20&cursor=${fake[39].id}`]));
    } finally {
      await page.unroute(isList);
    }
  });

  it('shows where inventory and the agents disagree: a VM an agent runs behind inventory\'s back, as orphaned', async () => {
    const stray = randomUUID();
    const bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'web-e2e-stray', credsFile: nats.serviceEnv('inventory').NATS_CREDS });
    try {
      await bus.request(StartVm, { vm: { id: stray, name: 'stray', memoryMiB: 256, vcpus: 1, cpuBaseline: 'Westmere' } }, { params: { hostId: 'host-c' } });
    } finally {
      await bus.close();
    }
    await waitFor('the stray VM in the report', async () => ((await api('GET', '/api/v1/reconciliation')).body.items ?? []).some((f: { vmId: string }) => f.vmId === stray), { timeoutMs: 20_000 });
    // straight to the page (the console answers its route with the app), then by the menu after a reload
    await page.goto(`${url.console}/reconciliation`);
    const row = page.getByLabel('findings', { exact: true }).locator(`tr[data-row="orphaned/${stray}/host-c"]`);
    await row.waitFor();
    expect(await row.innerText()).toMatch(/orphaned[\s\S]*host-c[\s\S]*running[\s\S]*no record/);
    expect(await page.getByLabel('last pass').innerText()).toMatch(/every 500 ms[\s\S]*Hosts checked\s*\d+/);
    await shot('reconciliation');
    const reload = page.getByRole('button', { name: 'Reload' });
    await waitFor('Reload usable once the report is shown', () => reload.isEnabled(), { timeoutMs: 5_000 });
    await reload.click();
    await row.waitFor();
    // the kind is filtered by the server, one page at a time
    await page.getByLabel('kind', { exact: true }).selectOption('split-brain');
    await page.getByText('No split-brain findings').waitFor();
    await page.getByLabel('kind', { exact: true }).selectOption('orphaned');
    await row.waitFor();
    expect(await page.getByLabel('findings shown').innerText()).toMatch(/^1–\d+$/);
    await page.getByRole('link', { name: 'Clusters' }).click();
    await page.getByRole('link', { name: 'Reconciliation' }).click();
    await row.waitFor();
  });

  it('answers the app at the URL of every page its menu names, so a reload or a shared link lands on that page', async () => {
    // the menu is the web app's (apps/console-web/src/main.tsx); the paths the console answers with the app are
    // its own list (apps/console/src/web/web.controller.ts): a page added to one and not the other fails here
    const index = await (await fetch(`${url.console}/`)).text();
    const menu = await page.getByRole('navigation', { name: 'sections' }).getByRole('link').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
    expect(menu.length).toBeGreaterThanOrEqual(6);
    for (const href of menu) {
      for (const path of [href, `${href}/some-id`]) {
        const r = await fetch(`${url.console}${path}`);
        expect([path, r.status, await r.text()]).toEqual([path, 200, index]);
      }
    }
  });
});
