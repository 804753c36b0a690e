import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CheckVmCpu, ErrorCode, FlexmigError, GuestCpuCheck, HOST_PASSTHROUGH_BASELINE } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { VmEntity } from '../entities';
import { vmNotFound } from '../errors';

/** The qemu agent waits up to 20 s for a fresh CPUID sample from the guest; the request allows for that. */
const CPU_CHECK_TIMEOUT_MS = 30_000;

/**
 * POST /api/v1/vms/:id/cpu-check: asks the agent of the VM's host what the guest sees of its CPU, against
 * the baseline recorded here (host-passthrough: the features of the host it started on). No transaction is
 * open while the agent answers.
 */
@Injectable()
export class VmCpuCheckService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
  ) {}

  async check(vmId: string): Promise<GuestCpuCheck> {
    const vm = await this.db.getRepository(VmEntity).findOneBy({ id: vmId });
    if (!vm) throw vmNotFound(vmId);
    if (vm.state !== 'running') {
      throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${vm.name} (${vmId}) is ${vm.state}: only a running guest can show its CPU`, { vmId, state: vm.state });
    }
    const passthrough = vm.cpuBaseline === HOST_PASSTHROUGH_BASELINE && vm.cpuFeatures ? { expectedFeatures: vm.cpuFeatures } : {};
    try {
      return await this.bus.request(CheckVmCpu, { vmId, baseline: vm.cpuBaseline, ...passthrough }, { params: { hostId: vm.hostId }, timeoutMs: CPU_CHECK_TIMEOUT_MS });
    } catch (e) {
      // the agent's own failures (a malformed record in guest memory) are not the caller's bad input
      const code = e instanceof FlexmigError && e.code !== ErrorCode.MalformedCpuid ? e.code : ErrorCode.AgentFailed;
      throw new FlexmigError(code, `the CPU check of VM ${vm.name} (${vmId}) on host ${vm.hostId} failed: ${(e as Error).message}`, { vmId, hostId: vm.hostId });
    }
  }
}
