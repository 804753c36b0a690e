import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv, QEMU_DEFAULTS } from '../config';
import { HypervisorDriver } from './driver';
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
  };
}

export function createDriver(env: AgentEnv): HypervisorDriver {
  switch (env.DRIVER) {
    case 'sim':
      return new SimDriver(simDriverOptions(env, simulatedHostCpu(env.SIM_CPU)));
    case 'qemu': {
      const address = env.MIGRATION_ADDRESS;
      const host = address.startsWith('[') ? address.slice(1, address.indexOf(']')) : address.includes(':') ? address.slice(0, address.lastIndexOf(':')) : address;
      return new QemuDriver({
        binary: env.QEMU_BINARY ?? QEMU_DEFAULTS.binary,
        accel: env.QEMU_ACCEL ?? QEMU_DEFAULTS.accel,
        runDir: env.QEMU_RUN_DIR ?? join(tmpdir(), `flexmig-qemu-${env.HOST_ID}`),
        listenHost: env.QEMU_MIGRATION_LISTEN_HOST ?? host,
        ...(env.QEMU_MIGRATION_PORT_RANGE ? { portRange: env.QEMU_MIGRATION_PORT_RANGE } : {}),
        ...(env.QEMU_GUEST_DIRTY_RATE_MIBPS !== undefined
          ? { defaultWorkload: { dirtyRateMiBps: env.QEMU_GUEST_DIRTY_RATE_MIBPS, ...(env.QEMU_GUEST_WORKING_SET_MIB ? { workingSetMiB: env.QEMU_GUEST_WORKING_SET_MIB } : {}) } }
          : {}),
      });
    }
  }
}
