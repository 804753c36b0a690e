import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type ServiceProcess } from '@flexmig/testing';
import { Harness, type HarnessOptions } from '../harness';

export type Driver = 'sim' | 'qemu';

export interface FaultHarnessOptions extends HarnessOptions {
  driver: Driver;
  /** A host whose agent keeps its state somewhere else (a small tmpfs, to fill it). */
  stateDirOf?: Record<string, string>;
}

/**
 * The e2e Harness with what the fault matrix needs besides: agents on the qemu driver (TCG, each host with
 * its own run and state directory, its own migration address and port range on the loopback), and a
 * state directory of the scenario's choosing per host.
 */
export class FaultHarness extends Harness {
  constructor(readonly fo: FaultHarnessOptions) {
    super(fo);
  }

  get driver(): Driver {
    return this.fo.driver;
  }

  /** Where a host's agent keeps its state (and, on qemu, its QEMUs' sockets and state files). */
  hostDir(hostId: string): string {
    return this.fo.stateDirOf?.[hostId] ?? path.join(this.stateDir, hostId);
  }

  override async startAgent(hostId: string): Promise<ServiceProcess> {
    const i = this.o.hosts.findIndex((x) => x.id === hostId);
    const h = this.o.hosts[i];
    const dir = this.hostDir(hostId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (this.driver === 'qemu') mkdirSync(this.qemuRunDir(hostId), { recursive: true, mode: 0o700 });
    const qemu: Record<string, string> =
      this.driver === 'qemu'
        ? {
            DRIVER: 'qemu',
            QEMU_ACCEL: 'tcg',
            QEMU_RUN_DIR: this.qemuRunDir(hostId),
            MIGRATION_ADDRESS: `127.0.0.1:${49_100 + i * 100}`,
            QEMU_MIGRATION_PORT_RANGE: `${49_101 + i * 100}-${49_199 + i * 100}`,
            QEMU_GUEST_DIRTY_RATE_MIBPS: '32',
            QEMU_GUEST_WORKING_SET_MIB: '32',
          }
        : { SIM_CPU: h.cpu, SIM_VCPUS: '512' };
    return this.startService(hostId, 'agent', {
      ...(await this.nats.agentEnv(h.id)),
      HOST_ID: h.id,
      CLUSTER_NAME: 'faults',
      AGENT_STATE_DIR: dir,
      HEARTBEAT_INTERVAL_MS: '500',
      ...qemu,
      ...this.o.agent,
    });
  }

  /** The run directory of a host's QEMUs (qemu driver). */
  qemuRunDir(hostId: string): string {
    return path.join(this.stateDir, `${hostId}-run`);
  }
}
