import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv } from '../config';
import { HypervisorDriver } from './driver';
import { SimDriver } from './sim.driver';

export function createDriver(env: AgentEnv): HypervisorDriver {
  switch (env.DRIVER) {
    case 'sim':
      return new SimDriver({
        hostCpu: simulatedHostCpu(env.SIM_CPU),
        memoryMiB: env.SIM_MEMORY_MIB,
        vcpus: env.SIM_VCPUS,
        bandwidthMiBps: env.SIM_BANDWIDTH_MIBPS,
        timeScale: env.SIM_TIME_SCALE,
        defaultDirtyRateMiBps: env.SIM_DIRTY_RATE_MIBPS,
        defaultWorkingSetMiB: env.SIM_WORKING_SET_MIB,
      });
    case 'qemu':
      throw new FlexmigError(ErrorCode.ValidationFailed, 'DRIVER=qemu is not available in this build yet; use DRIVER=sim');
  }
}
