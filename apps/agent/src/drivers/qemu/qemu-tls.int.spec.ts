/**
 * The qemu driver's migration over TLS with REAL QEMU (TCG) on loopback: certificates made here as
 * `flexmig auth agent` makes them (a CA per test, each host's QEMU_TLS_DIR from libs/nats-auth's
 * certificates.ts, valid for a day). Skips when qemu-system-x86_64 or openssl is not installed.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationPolicySchema, StepCommand, StepName, VmSpec } from '@flexmig/contracts';
import { makeCa, writeQemuTlsDir, type CaFiles } from '@flexmig/nats-auth';
import { QemuDriver } from './qemu.driver';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const missing = [BINARY, 'openssl'].filter((b) => spawnSync(b, ['--version']).status !== 0 && spawnSync(b, ['version']).status !== 0);
if (missing.length) console.warn(`SKIPPED: the QEMU TLS tests need ${missing.join(' and ')}`);
const d = missing.length ? describe.skip : describe;

d('QemuDriver: migration over TLS (tls-creds-x509 on both ends)', () => {
  jest.setTimeout(120_000);
  let root: string;
  const cas: Record<'ca' | 'other-ca', CaFiles> = {} as never;
  const drivers: QemuDriver[] = [];
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'fmq-tls-'));
    cas.ca = makeCa({ cert: join(root, 'ca', 'ca.pem'), key: join(root, 'ca', 'ca.key') }, 'flexmig test CA', 1);
    cas['other-ca'] = makeCa({ cert: join(root, 'other-ca', 'ca.pem'), key: join(root, 'other-ca', 'ca.key') }, 'someone else', 1);
  });
  afterEach(async () => {
    for (const drv of drivers.splice(0)) await drv.destroyAll().catch(() => undefined);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const driver = (name: string, tlsDir: string) => {
    const drv = new QemuDriver({ binary: BINARY, accel: 'tcg', runDir: join(root, 'run', name), listenHost: '127.0.0.1', pollIntervalMs: 100, tlsDir });
    drivers.push(drv);
    return drv;
  };
  /**
   * A running VM on a source whose QEMU_TLS_DIR trusts `sourceTrusts`, and a target prepared for it whose
   * certificates the flexmig test CA issued for `targetNames` (and which trusts that CA): the commands of one migration.
   */
  const prepared = async (sourceTrusts: 'ca' | 'other-ca', targetNames = ['127.0.0.1']) => {
    const tag = randomUUID().slice(0, 8);
    const src = driver(`src-${tag}`, writeQemuTlsDir(join(root, `src-${tag}`), cas[sourceTrusts], 'src-host', ['127.0.0.1'], 1));
    const dst = driver(`dst-${tag}`, writeQemuTlsDir(join(root, `dst-${tag}`), cas.ca, 'dst-host', targetNames, 1));
    const vm: VmSpec = { id: randomUUID(), name: 'tls-guest', memoryMiB: 128, vcpus: 1, cpuBaseline: 'Westmere' };
    await src.startVm(vm);
    const migrationId = randomUUID();
    let incomingAddress: string | undefined;
    const cmd = (step: number, stepName: StepName, role: 'source' | 'target'): StepCommand => ({
      ...(incomingAddress ? { incomingAddress } : {}),
      migrationId, step, stepName, attempt: 1, role, vm, sourceHostId: 'src-host', targetHostId: 'dst-host', policy: MigrationPolicySchema.parse({}),
    });
    incomingAddress = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
    return { src, dst, vm, cmd };
  };
  const noProgress = () => undefined;

  it('migrates a VM when each side trusts the CA of the other, the memory intact', async () => {
    const { src, dst, vm, cmd } = await prepared('ca');
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), noProgress);
    await src.syncMemory(cmd(4, 'sync-memory', 'source'), noProgress);
    await src.pauseSource(vm.id);
    await src.transferState(cmd(6, 'transfer-state', 'source'));
    await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
    await dst.resumeTarget(vm.id);
    await src.stopSource(vm.id);
    expect((await dst.checkMemory(vm.id)).ok).toBe(true);
  });

  it('refuses a target whose certificate the source does not trust: the copy fails, the VM keeps running on the source', async () => {
    // the source trusts only "someone else"; the target presents a certificate of the flexmig test CA
    const { src, vm, cmd } = await prepared('other-ca');
    const err = await src.transferMemory(cmd(3, 'transfer-memory', 'source'), noProgress).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AGENT_FAILED' });
    expect((err as Error).message).toMatch(/certificate|TLS|issuer/i);
    expect(src.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
    expect((await src.checkMemory(vm.id)).ok).toBe(true);
  });

  it('refuses a target whose certificate, of a trusted CA, names another host: the name checked is the address the stream goes to', async () => {
    // the source hands QEMU its own connection (fd:), which carries no host name: the agent sets tls-hostname
    const { src, vm, cmd } = await prepared('ca', ['10.9.9.9', 'elsewhere.example']);
    const err = await src.transferMemory(cmd(3, 'transfer-memory', 'source'), noProgress).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AGENT_FAILED' });
    expect((err as Error).message).toMatch(/does not match the hostname 127\.0\.0\.1/i);
    expect(src.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
  });
});
