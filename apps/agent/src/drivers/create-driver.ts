import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv, QEMU_DEFAULTS, qemuRunDir } from '../config';
import { HypervisorDriver } from './driver';
import { addressHost } from '../address';
import { SimDriver, SimDriverOptions } from './sim.driver';
import { QemuDriver } from './qemu/qemu.driver';

/** The sim driver's settings from an agent's environment (one agent, or one host of a fleet). */
export function simDriverOptions(env: AgentEnv, hostCpu: SimDriverOptions['hostCpu']): SimDriverOptions {
  return {
    hostCpu,
    memoryMiB: env.SIM_MEMORY_MIB,
    vcpus: env.SIM_VCPUS,
    bandwidthMiBps: env.SIM_BANDWIDTH_MIBPS,
    timeScale: env.SIM_TIME_SCALE,
    defaultDirtyRateMiBps: env.SIM_DIRTY_RATE_MIBPS,
    defaultWorkingSetMiB: env.SIM_WORKING_SET_MIB,
    ...(env.SIM_SWITCHOVER === 'qemu' ? { switchoverAsQemu: true } : {}),
  };
}

export function createDriver(env: AgentEnv): HypervisorDriver {
  switch (env.DRIVER) {
    case 'sim':
      return new SimDriver(simDriverOptions(env, simulatedHostCpu(env.SIM_CPU)));
    case 'qemu': {
      return new QemuDriver({
        binary: env.QEMU_BINARY ?? QEMU_DEFAULTS.binary,
        accel: env.QEMU_ACCEL ?? QEMU_DEFAULTS.accel,
        runDir: qemuRunDir(env),
        listenHost: env.QEMU_MIGRATION_LISTEN_HOST ?? addressHost(env.MIGRATION_ADDRESS),
        ...(env.QEMU_MIGRATION_PORT_RANGE ? { portRange: env.QEMU_MIGRATION_PORT_RANGE } : {}),
        ...(env.QEMU_TLS_DIR ? { tlsDir: env.QEMU_TLS_DIR } : {}),
        ...(env.QEMU_HOST_VCPUS ? { vcpus: env.QEMU_HOST_VCPUS } : {}),
        ...(env.QEMU_DIRTY_RATE_INTERVAL_MS !== undefined ? { dirtyRateIntervalMs: env.QEMU_DIRTY_RATE_INTERVAL_MS } : {}),
        ...(env.QEMU_LINK_PROBE_MIB !== undefined ? { linkProbeMiB: env.QEMU_LINK_PROBE_MIB } : {}),
        ...(env.QEMU_PREALLOC_INCOMING ? { preallocIncoming: env.QEMU_PREALLOC_INCOMING } : {}),
        ...(env.QEMU_GUEST_DIRTY_RATE_MIBPS !== undefined
          ? { defaultWorkload: { dirtyRateMiBps: env.QEMU_GUEST_DIRTY_RATE_MIBPS, ...(env.QEMU_GUEST_WORKING_SET_MIB ? { workingSetMiB: env.QEMU_GUEST_WORKING_SET_MIB } : {}) } }
          : {}),
      });
    }
  }
}
