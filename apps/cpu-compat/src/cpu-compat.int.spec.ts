import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, repoRoot, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor, httpJson } from '@flexmig/testing';

// cpu-compat as a real process over HTTP and NATS (`npm run build` first); inventory and one simulated
// agent run too, for the masks of a registered host.

const call = httpJson;

// The real processors of libs/cpu-models/fixtures; expected.json's `expectedMode` is the strict libvirt reading,
// and its alternatives the outcome under this catalog's documented policy (libs/cpu-models/README.md, as in
// fixtures.spec.ts): SYSCALL inferred from lm, MSR features unchecked, hypervisor-supplied bits present.
const POLICY_ALTERNATIVES = ['ifSyscallInferredAndMsrFeaturesIgnored', 'ifMsrFeaturesIgnored', 'ifSyscallInferredFromLm', 'ifAratSupplied'];
interface Fixture {
  file: string;
  format: 'cpuid' | 'cpuinfo';
  vendor: string;
  expectedMode: string | null;
  alternatives?: Record<string, string | null>;
}
const fixtureDir = path.join(repoRoot, 'libs/cpu-models/fixtures');
const fixtures: Fixture[] = JSON.parse(readFileSync(path.join(fixtureDir, 'expected.json'), 'utf8'));
const policyMode = (f: Fixture): string | null => {
  const alts = f.alternatives ?? {};
  const unknown = Object.keys(alts).filter((k) => !POLICY_ALTERNATIVES.includes(k));
  if (unknown.length) throw new Error(`${f.file}: alternative(s) ${unknown.join(', ')} not mapped to the policy`);
  for (const k of POLICY_ALTERNATIVES) if (k in alts) return alts[k];
  return f.expectedMode;
};
const fixtureBody = (f: Fixture) => {
  const text = readFileSync(path.join(fixtureDir, f.file), 'utf8');
  return f.format === 'cpuid' ? { cpuid: JSON.parse(text) } : { cpuinfo: text };
};
const byMicroarch = (prefix: string) => fixtures.find((f) => f.file.startsWith(prefix))!;

describe('cpu-compat over HTTP and NATS', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let nc: NatsConnection;
  const services: ServiceProcess[] = [];
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-cc-agents-')); // the agent's state, the suite's own
  let cpu: string;
  let inv: string;
  const api = (method: string, route: string, body?: unknown) => call(cpu, method, route, body);

  beforeAll(async () => {
    nats = await startTestNats('cpucompat');
    db = await startTestDatabase('cpucompat');
    nc = await connect({ servers: nats.url });
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn' };
    const [cpuPort, invPort, agentPort] = [await freePort(), await freePort(), await freePort()];
    cpu = `http://127.0.0.1:${cpuPort}`;
    inv = `http://127.0.0.1:${invPort}`;
    const cpuCompat = new ServiceProcess('cpu-compat', { ...common, PORT: String(cpuPort) }, cpuPort);
    const inventory = new ServiceProcess('inventory', { ...common, DATABASE_URL: db.url, PORT: String(invPort) }, invPort);
    services.push(cpuCompat, inventory);
    await Promise.all([cpuCompat.start(), inventory.start()]);
    const agent = new ServiceProcess('agent', { ...common, HOST_ID: 'mask-ivb', CLUSTER_NAME: 'masks', SIM_CPU: 'IvyBridge', PORT: String(agentPort), SIM_TIME_SCALE: '0', AGENT_STATE_DIR: stateDir }, agentPort);
    services.push(agent);
    await agent.start();
    await waitFor('host mask-ivb to register', async () => (await call(inv, 'GET', '/api/v1/hosts/mask-ivb')).status === 200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await nc?.close();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  it('has at least 12 real processor fixtures: Intel, AMD, Hygon and Zhaoxin', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(12);
    expect(new Set(fixtures.map((f) => f.vendor))).toEqual(new Set(['Intel', 'AMD', 'Hygon', 'Zhaoxin']));
  });

  it.each(fixtures.map((f) => [f.file, f] as const))('POST /evaluate with %s gives its expected mode', async (_file, f) => {
    const r = await api('POST', '/api/v1/cpu/evaluate', fixtureBody(f));
    expect(r.status).toBe(200);
    expect(r.body.vendor).toBe(f.vendor);
    expect(r.body.maxImcMode).toBe(policyMode(f));
    expect(r.body.reason).toEqual(expect.any(String));
    // the ladder says, for each newer mode, what the host lacks
    const above = r.body.ladder.filter((s: { supported: boolean }) => !s.supported);
    for (const s of above) expect(s.missing.length).toBeGreaterThan(0);
  });

  it('refuses a Westmere VM on a Penryn host (422) naming sse4.2, popcnt, aes…', async () => {
    const penryn = await api('POST', '/api/v1/cpu/evaluate', fixtureBody(byMicroarch('intel-penryn')));
    expect(penryn.body.maxImcMode).toBe('Penryn');
    const r = await api('POST', '/api/v1/cpu/verdict', { baseline: 'Westmere', target: { vendor: 'Intel', features: penryn.body.features } });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('CPU_INCOMPATIBLE');
    expect(r.body.details.missing).toEqual(expect.arrayContaining(['sse4.2', 'popcnt', 'aes']));
    expect(r.body.message).toMatch(/sse4\.2/);
    const ok = await api('POST', '/api/v1/cpu/verdict', { baseline: 'Penryn', target: { vendor: 'Intel', features: penryn.body.features } });
    expect(ok).toMatchObject({ status: 200, body: { compatible: true, baseline: 'Penryn' } });
  });

  it('gives the CPUID masks of a baseline on a registered host, hiding its extra features', async () => {
    const r = await api('GET', '/api/v1/cpu/models/SandyBridge/masks?hostId=mask-ivb');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ model: 'SandyBridge', hostId: 'mask-ivb' });
    const leaf1ecx = r.body.masks.find((m: { leaf: string; subleaf: number; register: string }) => parseInt(m.leaf, 16) === 1 && m.subleaf === 0 && m.register === 'ECX');
    const bit = (hex: string, n: number) => (parseInt(hex, 16) >>> n) & 1;
    // IvyBridge has f16c (ECX[29]) and rdrand (ECX[30]); SandyBridge does not: the mask hides them; avx (ECX[28]) stays
    expect([bit(leaf1ecx.hostBits, 29), bit(leaf1ecx.hostBits, 30)]).toEqual([1, 1]);
    expect([bit(leaf1ecx.mask, 29), bit(leaf1ecx.mask, 30), bit(leaf1ecx.mask, 28)]).toEqual([0, 0, 1]);
    expect(leaf1ecx.mask).toMatch(/^0x[0-9a-f]{8}$/);
    expect((await api('GET', '/api/v1/cpu/models/SandyBridge/masks?hostId=no-such-host')).status).toBe(404);
    expect((await api('GET', '/api/v1/cpu/models/Pentium4/masks?hostId=mask-ivb')).body.code).toBe('UNKNOWN_CPU_MODEL');
  });

  it('plans described hosts: the mode, the host holding it down and the mode without it', async () => {
    const features = async (mode: string) => (await api('GET', `/api/v1/cpu/models/${mode}`)).body.features as string[];
    const hosts = [
      { id: 'old-snb', vendor: 'Intel', features: [...(await features('SandyBridge')), 'vmx'] },
      { id: 'ivb', vendor: 'Intel', features: [...(await features('IvyBridge')), 'vmx'] },
      { id: 'hsw', vendor: 'Intel', features: [...(await features('Haswell')), 'vmx'] },
    ];
    const r = await api('POST', '/api/v1/cpu/plan', { hosts });
    expect(r.status).toBe(200);
    expect(r.body.mode).toBe('SandyBridge');
    expect(r.body.holdingDown).toEqual(['old-snb']);
    expect(r.body.withoutHost).toEqual(
      expect.arrayContaining([
        { hostId: 'old-snb', mode: 'IvyBridge' },
        { hostId: 'ivb', mode: 'SandyBridge' },
      ]),
    );
  });

  it('plans each host once: a described host as described, even where inventory knows its id; the named ones as inventory knows them', async () => {
    const snb = [...(await api('GET', '/api/v1/cpu/models/SandyBridge')).body.features, 'vmx'];
    // mask-ivb is registered as an IvyBridge; described as a SandyBridge it is planned as one (what if it had that CPU)
    const asDescribed = await api('POST', '/api/v1/cpu/plan', { hosts: [{ id: 'mask-ivb', vendor: 'Intel', features: snb }], hostIds: ['mask-ivb', 'mask-ivb'] });
    expect(asDescribed.status).toBe(200);
    expect(asDescribed.body.hostModes).toEqual([{ hostId: 'mask-ivb', mode: 'SandyBridge' }]);
    // named twice, read from inventory once
    const named = await api('POST', '/api/v1/cpu/plan', { hostIds: ['mask-ivb', 'mask-ivb'] });
    expect(named.status).toBe(200);
    expect(named.body.hostModes).toEqual([{ hostId: 'mask-ivb', mode: 'IvyBridge' }]);
    expect(named.body.withoutHost).toEqual([{ hostId: 'mask-ivb', mode: null }]);
  });

  it('refuses a plan of more than 1,000 host ids (each is a read of inventory: a whole cluster is clusterId), or a host described twice', async () => {
    const tooMany = await api('POST', '/api/v1/cpu/plan', { hostIds: Array.from({ length: 1_001 }, (_, i) => `h${i}`) });
    expect(tooMany).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    expect(tooMany.body.message).toMatch(/hostIds.*at most 1000 host ids; a whole cluster is clusterId/);
    const snb = [...(await api('GET', '/api/v1/cpu/models/SandyBridge')).body.features, 'vmx'];
    const twice = await api('POST', '/api/v1/cpu/plan', { hosts: [{ id: 'a', vendor: 'Intel', features: snb }, { id: 'a', vendor: 'Intel', features: snb.slice(1) }] });
    expect(twice).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    expect(twice.body.message).toMatch(/host a is described twice/);
    // 1,000 ids are taken, and an unknown one among them is the 404 it was
    const unknown = await api('POST', '/api/v1/cpu/plan', { hostIds: ['mask-ivb', ...Array.from({ length: 999 }, (_, i) => `no-such-${i}`)] });
    expect(unknown).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(unknown.body.message).toMatch(/host no-such-\d+ does not exist/);
  });

  it('the verdict of a host-passthrough VM needs the same feature set', async () => {
    const ivb = [...(await api('GET', '/api/v1/cpu/models/IvyBridge')).body.features, 'vmx'];
    const same = await api('POST', '/api/v1/cpu/verdict', { baseline: 'host-passthrough', vmFeatures: ivb, target: { vendor: 'Intel', features: [...ivb].reverse() } });
    expect(same).toMatchObject({ status: 200, body: { compatible: true } });
    const less = await api('POST', '/api/v1/cpu/verdict', { baseline: 'host-passthrough', vmFeatures: ivb, target: { vendor: 'Intel', features: ivb.filter((f) => f !== 'rdrand') } });
    expect(less.status).toBe(422);
    expect(less.body.details.missing).toEqual(['rdrand']);
  });

  describe('bad input: 4xx with a clear message', () => {
    it.each([
      ['cpuinfo without a flags line', { cpuinfo: 'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: x\n' }, 400, 'MALFORMED_CPUINFO'],
      ['cpuinfo that is not cpuinfo', { cpuinfo: 'hello world' }, 400, 'MALFORMED_CPUINFO'],
      ['CPUID rows with a bad number', { cpuid: [{ leaf: 'zz', subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 }] }, 400, 'MALFORMED_CPUID'],
      ['CPUID rows without leaf 0', { cpuid: [{ leaf: 1, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 }] }, 400, 'MALFORMED_CPUID'],
      ['an empty feature list', { features: [], vendor: 'Intel' }, 400, 'EMPTY_FEATURE_LIST'],
      ['a feature list of unknown names', { features: ['warp-drive'], vendor: 'Intel' }, 400, 'EMPTY_FEATURE_LIST'],
      ['a feature list whose vendor cannot be inferred', { features: ['sse2', 'sse3'] }, 422, 'UNKNOWN_VENDOR'],
      ['cpuinfo of a vendor no ladder knows', { cpuinfo: 'processor\t: 0\nvendor_id\t: CyrixInstead\nflags\t\t: fpu sse sse2\n' }, 422, 'UNKNOWN_VENDOR'],
      ['an empty body', {}, 400, 'VALIDATION_FAILED'],
    ])('evaluate: %s', async (_what, body, status, code) => {
      const r = await api('POST', '/api/v1/cpu/evaluate', body);
      expect({ status: r.status, code: r.body.code }).toEqual({ status, code });
      expect(r.body.message.length).toBeGreaterThan(10);
    });

    it('an unknown mode is 404 UNKNOWN_CPU_MODEL listing the valid ones', async () => {
      const r = await api('GET', '/api/v1/cpu/models/Pentium4');
      expect(r).toMatchObject({ status: 404, body: { code: 'UNKNOWN_CPU_MODEL' } });
      expect(r.body.message).toMatch(/Pentium4.*SandyBridge/);
      const v = await api('POST', '/api/v1/cpu/verdict', { baseline: 'Pentium4', target: { vendor: 'Intel', features: ['sse2'] } });
      expect(v).toMatchObject({ status: 404, body: { code: 'UNKNOWN_CPU_MODEL' } });
    });

    it('an unknown vendor in a request body is 400 naming the field', async () => {
      const r = await api('POST', '/api/v1/cpu/verdict', { baseline: 'SandyBridge', target: { vendor: 'Cyrix', features: ['sse2'] } });
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(/target\.vendor/);
      expect((await api('GET', '/api/v1/cpu/models?vendor=Cyrix')).status).toBe(400);
    });

    it('a body that is not JSON is 400', async () => {
      const r = await httpJson(cpu, 'POST', '/api/v1/cpu/evaluate', '{"cpuinfo": ');
      expect(r).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    });

    it('a 2 MB body is 413 PAYLOAD_TOO_LARGE (HTTP_BODY_LIMIT, 256 KiB by default), not an internal error', async () => {
      const r = await httpJson(cpu, 'POST', '/api/v1/cpu/evaluate', { cpuinfo: 'x'.repeat(2 * 1024 * 1024) });
      expect(r).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE', details: { limitBytes: 262_144 } } });
    });
  });

  describe('NATS', () => {
    const request = async (subject: string, data: string) => {
      const msg = await nc.request(`${nats.prefix}.${subject}`, new TextEncoder().encode(data), { timeout: 5_000 });
      return JSON.parse(new TextDecoder().decode(msg.data));
    };

    it('a Zhaoxin host (no ladder) gets 200 with maxImcMode null and a reason saying passthrough only', async () => {
      const r = await api('POST', '/api/v1/cpu/evaluate', { features: ['fpu', 'sse', 'sse2', 'vmx'], vendor: 'Zhaoxin' });
      expect(r).toMatchObject({ status: 200, body: { vendor: 'Zhaoxin', maxImcMode: null, ladder: [] } });
      expect(r.body.reason).toMatch(/Zhaoxin has no IMC ladder.*cluster whose IMC mode is off \(host passthrough\)/);
      const cpuinfo = await api('POST', '/api/v1/cpu/evaluate', { cpuinfo: 'processor\t: 0\nvendor_id\t:   Shanghai  \nflags\t\t: fpu sse sse2\n' });
      expect(cpuinfo).toMatchObject({ status: 200, body: { vendor: 'Zhaoxin', maxImcMode: null } });
      // auto's ladder request names the same reason
      const ladder = await request('cpu.mode.ladder', JSON.stringify({ vendor: 'Zhaoxin' }));
      expect(ladder).toMatchObject({ ok: false, error: { code: 'UNKNOWN_VENDOR' } });
      expect(ladder.error.message).toMatch(/no IMC ladder.*set the cluster's IMC mode to off/);
    });

    it('the Intel ladder for auto lists the E-core modes among the main ones; Hygon has its own', async () => {
      const intel = await request('cpu.mode.ladder', JSON.stringify({ vendor: 'Intel' }));
      const names = intel.data.modes.map((m: { name: string }) => m.name);
      expect(names.slice(0, 6)).toEqual(['DiamondRapids', 'DiamondRapids-noTSX', 'GraniteRapids', 'GraniteRapids-noTSX', 'SapphireRapids', 'SapphireRapids-noTSX']);
      expect(names.indexOf('SierraForest')).toBe(names.indexOf('Skylake-Client-noTSX') - 1);
      const hygon = await request('cpu.mode.ladder', JSON.stringify({ vendor: 'Hygon' }));
      expect(hygon.data.modes.map((m: { name: string }) => m.name)).toEqual(['Dhyana-v2', 'Dhyana']);
    });

    it('answers cpu.evaluate', async () => {
      const reply = await request('cpu.evaluate', JSON.stringify(fixtureBody(byMicroarch('intel-sandybridge'))));
      expect(reply).toMatchObject({ ok: true, data: { vendor: 'Intel', maxImcMode: 'SandyBridge' } });
    });

    it('a malformed message to cpu.evaluate gets an error reply, and the service keeps answering', async () => {
      expect(await request('cpu.evaluate', 'not json {')).toMatchObject({ ok: false, error: { code: 'MALFORMED_MESSAGE' } });
      expect(await request('cpu.evaluate', JSON.stringify({ cpuid: 'nope' }))).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      expect(await request('cpu.evaluate', JSON.stringify({ cpuinfo: 'garbage' }))).toMatchObject({ ok: false, error: { code: 'MALFORMED_CPUINFO' } });
      expect(await request('cpu.evaluate', JSON.stringify({ features: ['sse2'], vendor: 'Intel' }))).toMatchObject({ ok: true });
    });

    it('answers cpu.mode.verify per host', async () => {
      const snb = [...(await api('GET', '/api/v1/cpu/models/SandyBridge')).body.features, 'vmx'];
      const reply = await request('cpu.mode.verify', JSON.stringify({ mode: 'IvyBridge', hosts: [{ id: 'a', vendor: 'Intel', features: snb }] }));
      expect(reply.ok).toBe(true);
      expect(reply.data.pass).toBe(false);
      expect(reply.data.hosts[0].missing).toEqual(expect.arrayContaining(['f16c', 'rdrand']));
      expect(await request('cpu.mode.verify', JSON.stringify({ mode: 'Pentium4', hosts: [] }))).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CPU_MODEL' } });
    });
  });
});
