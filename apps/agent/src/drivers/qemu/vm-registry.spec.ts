/**
 * The registry's recovery from its run dir, without QEMU: which state files it trusts, which it
 * ignores, and what it reports for a VM whose QEMU ended while no agent watched.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { ensurePrivateDir } from '../../private-files';
import { endsWithItsStream, VmObserver, VmRegistry, VmState, VmStateSchema } from './vm-registry';

let runDir: string;
let errors: jest.SpyInstance;
const observer: VmObserver = { onAttach: async () => undefined, onEvent: () => undefined, onExit: () => undefined };

beforeEach(() => {
  runDir = join(mkdtempSync(join(tmpdir(), 'fm-reg-')), 'run');
  ensurePrivateDir(runDir);
  errors = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
});
afterEach(() => {
  errors.mockRestore();
  rmSync(join(runDir, '..'), { recursive: true, force: true });
});

/** A state file as the registry writes it; its pid is this test's own (alive, but not a QEMU with that socket). */
function state(over: Partial<VmState> = {}): VmState {
  const vmId = over.vmId ?? randomUUID();
  return {
    vmId,
    spec: { id: vmId, name: 'guest', memoryMiB: 128, vcpus: 1, cpuBaseline: 'Westmere' },
    role: 'vm',
    accel: 'tcg',
    cpu: 'Westmere,enforce',
    guest: { memStart: 1048576, memEnd: 9437184, markEvery: 256, delay: 0 },
    image: join(runDir, 'images', 'guest.img'),
    pid: process.pid,
    qmpSocket: join(runDir, `${vmId}.qmp`),
    logFile: join(runDir, `${vmId}.log`),
    serialFile: join(runDir, `${vmId}.serial`),
    startedAt: new Date().toISOString(),
    ...over,
  };
}

function write(name: string, content: unknown): string {
  const file = join(runDir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content), { mode: 0o600 });
  return file;
}

function recovered(): VmRegistry {
  const registry = new VmRegistry({ binary: 'qemu-system-x86_64', runDir }, observer);
  registry.recover();
  return registry;
}

describe('VmStateSchema: what a state file must hold before it may name a pid or a socket', () => {
  it('given a state file as written, then it parses', () => {
    expect(VmStateSchema.safeParse(state()).success).toBe(true);
  });

  it.each([
    ['a pid that is not a positive integer', { pid: 0 }],
    ['a vmId that is not a UUID', { vmId: '../../etc/passwd' }],
    ['an unknown role', { role: 'source' }],
    ['an unknown accelerator', { accel: 'hvf' }],
    ['an empty QMP socket path', { qmpSocket: '' }],
  ])('given %s, then it is refused', (_what, over) => {
    expect(VmStateSchema.safeParse({ ...state(), ...over }).success).toBe(false);
  });
});

describe('endsWithItsStream: which QEMU ending on its own is not news', () => {
  it('given an incoming copy that never ran, then its end is its stream\'s (the source cancelled or died)', () => {
    expect(endsWithItsStream(state({ role: 'incoming', migrationId: randomUUID() }))).toBe(true);
  });

  it('given an incoming copy that ran (step 7), or a VM started here, then its end is news', () => {
    expect(endsWithItsStream(state({ role: 'incoming', resumedAt: new Date().toISOString() }))).toBe(false);
    expect(endsWithItsStream(state({ role: 'vm' }))).toBe(false);
  });
});

describe('VmRegistry.recover: the QEMUs an earlier agent left', () => {
  it('given a valid state file whose QEMU is gone, then the VM is reported stopped once and its files are dropped', () => {
    const s = state({ role: 'incoming', migrationId: randomUUID() });
    write(`${s.vmId}.json`, s);
    writeFileSync(s.logFile, 'qemu said goodbye');
    writeFileSync(s.serialFile, 'A');
    const registry = recovered();
    expect(registry.list()).toEqual([{ vmId: s.vmId, state: 'stopped', memoryMiB: 128, migrationId: s.migrationId }]);
    expect(registry.info(s.vmId)).toMatchObject({ vmId: s.vmId, alive: false });
    expect(readdirSync(runDir)).toEqual([]);
    expect(errors).not.toHaveBeenCalled();
  });

  it('given a state file without a pid (written before a launch the agent did not live to finish), then its files are dropped and nothing is reported', () => {
    const { pid: _pid, ...launching } = state({ role: 'incoming', migrationId: randomUUID() });
    write(`${launching.vmId}.json`, launching);
    writeFileSync(launching.logFile, '');
    const registry = recovered();
    expect(registry.list()).toEqual([]);
    expect(readdirSync(runDir)).toEqual([]);
    expect(errors).not.toHaveBeenCalled();
  });

  it('given a state file that is not JSON, then it is ignored, left for an operator, and the log says which and why', () => {
    const file = write(`${randomUUID()}.json`, '{ not json');
    const registry = recovered();
    expect(registry.list()).toEqual([]);
    expect(existsSync(file)).toBe(true);
    expect(errors).toHaveBeenCalledWith(expect.stringMatching(new RegExp(`ignoring ${file}: not a valid VM state file \\(not JSON`)));
  });

  it('given a state file that fails the schema, then it never names a pid to the registry, and the log names the field', () => {
    const s = state();
    const file = write(`${s.vmId}.json`, { ...s, pid: 'self' });
    const registry = recovered();
    expect(registry.list()).toEqual([]);
    expect(registry.get(s.vmId)).toBeUndefined();
    expect(existsSync(file)).toBe(true);
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('pid:'));
  });

  it('given files that are not <uuid>.json, then they are not read at all', () => {
    const s = state();
    write('notes.json', s);
    write(`${s.vmId}.json.bak`, s);
    write(`${s.vmId}.log`, 'log');
    const registry = recovered();
    expect(registry.list()).toEqual([]);
    expect(readdirSync(runDir).sort()).toEqual([`${s.vmId}.json.bak`, `${s.vmId}.log`, 'notes.json']);
    expect(errors).not.toHaveBeenCalled();
  });
});
