import { Logger } from '@nestjs/common';
import { ErrorCode, FlexmigError, HostHeartbeat, RegisterHost } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import type { NatsBus } from '@flexmig/messaging';
import { sleep } from '@flexmig/timing';
import { AgentEnv } from './config';
import { SimDriver } from './drivers/sim.driver';
import { HostPresence } from './host-presence';

const cpu = simulatedHostCpu('IvyBridge');
const env = { HOST_ID: 'host-p', CLUSTER_NAME: 'c', MIGRATION_ADDRESS: 'host-p.sim:49152', HEARTBEAT_INTERVAL_MS: 10 } as AgentEnv;
const driver = () => new SimDriver({ hostCpu: cpu, memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });
const quick = { initialMs: 1, multiplier: 2, maxMs: 4 };
const log = { log: jest.fn(), warn: jest.fn(), verbose: jest.fn(), error: jest.fn() } as unknown as Logger;

/** A bus whose RegisterHost answers come from `answers` in turn (an Error is thrown); heartbeats are counted. */
function fakeBus(answers: (Error | 'ok')[]) {
  const requests: unknown[] = [];
  const beats: unknown[] = [];
  const subjectParams: unknown[] = [];
  const bus = {
    request: async (contract: unknown, req: { hostId: string }, opts?: { params?: unknown }) => {
      expect(contract).toBe(RegisterHost);
      requests.push(req);
      subjectParams.push(opts?.params);
      const a = answers[Math.min(requests.length - 1, answers.length - 1)];
      if (a instanceof Error) throw a;
      return { host: { id: req.hostId, maxImcMode: 'IvyBridge' }, cluster: { name: 'c' } };
    },
    publish: (contract: unknown, m: unknown, params?: unknown) => {
      expect(contract).toBe(HostHeartbeat);
      beats.push(m);
      subjectParams.push(params);
    },
  } as unknown as Pick<NatsBus, 'request' | 'publish'>;
  return { bus, requests, beats, subjectParams };
}

const absent = () => new FlexmigError(ErrorCode.Unavailable, 'no responders');

describe('HostPresence', () => {
  it('given inventory absent twice, then it retries with backoff and registers on the third attempt', async () => {
    const { bus, requests } = fakeBus([absent(), new FlexmigError(ErrorCode.Internal, 'db restarting'), 'ok']);
    const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false, backoff: quick });
    await expect(p.register()).resolves.toBe('registered');
    expect(requests).toHaveLength(3);
    expect(requests[0]).toMatchObject({ hostId: 'host-p', clusterName: 'c', hostname: 'host-p.sim', driver: 'sim', cpu, vms: [] });
    expect(p.lastError).toBeUndefined();
  });

  it('given a non-retryable answer, then it stops trying and keeps the refusal', async () => {
    const { bus, requests } = fakeBus([new FlexmigError(ErrorCode.CpuIncompatible, 'lacks Haswell')]);
    const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: true, backoff: quick });
    await expect(p.register()).resolves.toBe('refused');
    expect(requests).toHaveLength(1);
    expect(p.refusal?.code).toBe(ErrorCode.CpuIncompatible);
    expect(p.lastError).toBe('lacks Haswell');
  });

  it('given stop() while it waits between attempts, then registration ends `stopped` at once', async () => {
    const { bus } = fakeBus([absent()]);
    const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false, backoff: { initialMs: 60_000, multiplier: 1, maxMs: 60_000 } });
    const ended = p.register();
    await sleep(5);
    p.stop();
    await expect(ended).resolves.toBe('stopped');
    expect(p.state).toBe('stopped');
  });

  it("registers and heartbeats on its own host's subjects (inventory.host.<hostId>.…), which NATS permissions confine it to", async () => {
    const { bus, subjectParams } = fakeBus(['ok']);
    const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false, backoff: quick });
    await p.register();
    p.startHeartbeats(0);
    await sleep(15);
    p.stop();
    expect(subjectParams.length).toBeGreaterThanOrEqual(2);
    for (const params of subjectParams) expect(params).toEqual({ hostId: 'host-p' });
  });

  describe('on a clock the test moves (fake timers: a loaded machine cannot merge the beats)', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    it('heartbeats first after `firstAfterMs`, then every HEARTBEAT_INTERVAL_MS, and not after stop()', async () => {
      const { bus, beats } = fakeBus(['ok']);
      const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false });
      p.startHeartbeats(5);
      await jest.advanceTimersByTimeAsync(4);
      expect(beats).toHaveLength(0);
      await jest.advanceTimersByTimeAsync(1);
      expect(beats).toHaveLength(1);
      expect(beats[0]).toMatchObject({ hostId: 'host-p', vmCount: 0, instanceId: p.instanceId });
      await jest.advanceTimersByTimeAsync(3 * env.HEARTBEAT_INTERVAL_MS);
      expect(beats).toHaveLength(4);
      expect(p.heartbeatsSent).toBe(4);
      p.stop();
      await jest.advanceTimersByTimeAsync(10 * env.HEARTBEAT_INTERVAL_MS);
      expect(beats).toHaveLength(4);
    });

    it('given stop() before the first beat, then none is sent', async () => {
      const { bus, beats } = fakeBus(['ok']);
      const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false });
      p.startHeartbeats(5);
      p.stop();
      await jest.advanceTimersByTimeAsync(10 * env.HEARTBEAT_INTERVAL_MS);
      expect(beats).toHaveLength(0);
    });
  });

  describe('two agent processes with one HOST_ID', () => {
    const owned = (retryAfterMs: number) =>
      new FlexmigError(ErrorCode.HostOwnedByAnotherAgent, 'host host-p is held by agent instance X', { retryAfterMs, hostDownAfterMs: 40 }, false);

    it('given the host held by a predecessor that then goes silent, then it waits as told and takes over', async () => {
      const { bus, requests } = fakeBus([owned(5), 'ok']);
      const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false, backoff: quick });
      await expect(p.register()).resolves.toBe('registered');
      expect(requests).toHaveLength(2);
      expect((requests[0] as { instanceId: string }).instanceId).toBe(p.instanceId);
    });

    it('given another live agent that keeps heartbeating, then it gives up past HOST_DOWN_AFTER_MS with a refusal that says what to do', async () => {
      const { bus, requests } = fakeBus([owned(15)]);
      const p = new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false, backoff: quick });
      await expect(p.register()).resolves.toBe('refused');
      expect(requests.length).toBeGreaterThanOrEqual(2);
      expect(p.refusal?.code).toBe(ErrorCode.HostOwnedByAnotherAgent);
      expect(p.refusal?.message).toMatch(/Stop the other agent or give this one its own HOST_ID/);
    });

    it('has an instance id of its own per process (per presence)', () => {
      const { bus } = fakeBus(['ok']);
      expect(new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false }).instanceId).not.toBe(
        new HostPresence(bus, env, driver(), cpu, log, { warnEveryRetry: false }).instanceId,
      );
    });
  });

  describe('VM reports', () => {
    type Beat = { vmDigest: string; vms?: unknown[]; instanceId: string };
    afterEach(() => jest.useRealTimers());

    it('registers with the full VM set, then heartbeats only the digest until the set changes, and the set every Nth beat', async () => {
      const d = driver();
      const { bus, requests, beats } = fakeBus(['ok']);
      const p = new HostPresence(bus, { ...env, AGENT_VM_REPORT_EVERY_BEATS: 4 }, d, cpu, log, { warnEveryRetry: false });
      const vmId = '11111111-1111-4111-8111-111111111111';
      await d.startVm({ id: vmId, name: 'v', memoryMiB: 256, vcpus: 1, cpuBaseline: 'IvyBridge' });
      await p.register();
      expect(requests[0]).toMatchObject({ instanceId: p.instanceId, vms: [{ vmId, state: 'running' }] });
      jest.useFakeTimers();
      p.startHeartbeats(0);
      await jest.advanceTimersByTimeAsync(25);
      await d.pauseVm(vmId);
      await jest.advanceTimersByTimeAsync(60);
      p.stop();
      const b = beats as Beat[];
      expect(b).toHaveLength(9); // at 0, 10, … 80 ms
      expect(b.every((x) => x.instanceId === p.instanceId && /^[0-9a-f]{16}$/.test(x.vmDigest))).toBe(true);
      expect(b[0].vms).toBeUndefined(); // registration sent the set already
      const change = b.findIndex((x, i) => i > 0 && x.vmDigest !== b[i - 1].vmDigest);
      expect(change).toBeGreaterThan(0);
      expect(b[change].vms).toEqual([{ vmId, state: 'paused' }]);
      // between full reports, at most 3 digest-only beats
      let since = 0;
      for (const x of b.slice(change + 1)) {
        since = x.vms ? 0 : since + 1;
        expect(since).toBeLessThan(4);
      }
    });
  });
});
