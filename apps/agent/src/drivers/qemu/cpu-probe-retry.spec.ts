import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { probeCpu } from './cpu-probe';

// A stand-in for qemu-system-x86_64 that speaks just enough QMP for the CPU probe: the greeting, the
// capabilities, query-cpu-definitions, and query-cpu-model-expansion, which it leaves unanswered while
// its `hangs` file holds a number above 0 (each start that hangs takes one off). It records its pid per start.
const FAKE_QEMU = `#!/usr/bin/env node
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const here = path.dirname(process.argv[1]);
const qmp = process.argv[process.argv.indexOf('-qmp') + 1].slice('unix:'.length).split(',')[0];
fs.appendFileSync(path.join(here, 'pids'), process.pid + '\\n');
const hangsFile = path.join(here, 'hangs');
const hangs = Number(fs.readFileSync(hangsFile, 'utf8'));
if (hangs > 0) fs.writeFileSync(hangsFile, String(hangs - 1));
net.createServer((s) => {
  s.write(JSON.stringify({ QMP: { version: {}, capabilities: [] } }) + '\\n');
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      const answer = (ret) => s.write(JSON.stringify({ return: ret, id: m.id }) + '\\n');
      if (m.execute === 'query-cpu-definitions') answer([{ name: 'Westmere', 'unavailable-features': [] }]);
      else if (m.execute === 'query-cpu-model-expansion') { if (hangs <= 0) answer({ model: { name: 'max', props: { sse2: true, pni: true, vmx: false } } }); }
      else if (m.execute === 'quit') { answer({}); process.exit(0); }
      else answer({});
    }
  });
}).listen(qmp);
`;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('probeCpu: a probe QEMU that does not answer', () => {
  let dir: string;
  let binary: string;
  const startsWith = (hangs: number) => writeFileSync(join(dir, 'hangs'), String(hangs));
  // an empty file is no pid: Number('') is 0, and kill(0) would signal this worker's own process group
  const pids = () => readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fm-probe-'));
    binary = join(dir, 'qemu-system-x86_64');
    writeFileSync(binary, FAKE_QEMU);
    chmodSync(binary, 0o755);
    writeFileSync(join(dir, 'pids'), '');
  });

  afterEach(() => {
    for (const pid of existsSync(join(dir, 'pids')) ? pids() : []) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('given a first probe QEMU that never answers, when probing, then it is killed and a second one answers', async () => {
    startsWith(1);
    const probe = await probeCpu(binary, 'tcg', dir, 500);
    expect(probe.accels.map((a) => a.accel)).toEqual(['tcg']);
    expect([...probe.accels[0]!.maxFeatures]).toEqual(expect.arrayContaining(['sse2', 'pni']));
    expect(probe.accels[0]!.maxFeatures.has('vmx')).toBe(false);
    const started = pids();
    expect(started).toHaveLength(2);
    expect(started.filter(alive)).toEqual([]); // the silent one killed, the answering one quit
    expect(readdirSync(dir).filter((f) => f.startsWith('probe-'))).toEqual([]); // its directory removed
  });

  it('given every probe QEMU silent, when probing, then it fails after the second with a timeout that names the query', async () => {
    startsWith(5);
    const err = await probeCpu(binary, 'tcg', dir, 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlexmigError);
    expect((err as FlexmigError).code).toBe(ErrorCode.Timeout);
    expect((err as FlexmigError).message).toMatch(/query-cpu-model-expansion on CPU probe \(tcg\) got no answer within 300 ms/);
    expect(pids()).toHaveLength(2);
    expect(pids().filter(alive)).toEqual([]);
  });

  it('given a probe QEMU that answers, when probing, then one start is enough', async () => {
    startsWith(0);
    await probeCpu(binary, 'tcg', dir, 500);
    expect(pids()).toHaveLength(1);
  });
});
