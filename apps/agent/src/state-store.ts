import { Inject, Injectable, Logger } from '@nestjs/common';
import path from 'node:path';
import { HypervisorDriver, PersistedVmsSchema } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './driver.token';
import { AGENT_ENV, AgentEnv, agentStateDir } from './config';
import { ensurePrivateDir, readJsonFile, writePrivateFileAtomic } from './private-files';

/**
 * Keeps the driver's VM records on disk (drivers that hold them in memory only), so that an agent that
 * was killed and restarted finds again the VMs it ran and reports them: nothing running is forgotten.
 * The file is 0600 in a 0700 directory and validated when read.
 *
 * The records are read back when the store is built, not in a lifecycle hook: Nest subscribes the NATS
 * handlers of a hybrid app before it runs onModuleInit, and a command answered from an empty driver (a
 * step 6 refused, a compensation that destroyed nothing, an empty VM list) is wrong for good.
 */
@Injectable()
export class AgentStateStore {
  private readonly log = new Logger('state');
  private readonly file: string;

  constructor(
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    @Inject(AGENT_ENV) env: AgentEnv,
  ) {
    this.file = path.join(agentStateDir(env), `${env.HOST_ID}.json`);
    this.restore();
  }

  private restore(): void {
    if (!this.driver.restore) return;
    const read = readJsonFile(this.file, PersistedVmsSchema);
    if (read.kind === 'missing') return; // first start
    if (read.kind === 'invalid') {
      this.log.error(`cannot read ${this.file} (${read.reason}); starting with no VMs`);
      return;
    }
    this.driver.restore(read.value);
    const vms = this.driver.listVms();
    if (vms.length) this.log.log(`restored ${vms.length} VM(s) from ${this.file}: ${vms.map((v) => `${v.vmId} (${v.state})`).join(', ')}`);
  }

  /** Writes atomically (temp file + rename): a crash mid-write leaves the previous state. */
  save(): void {
    if (!this.driver.snapshot) return;
    try {
      ensurePrivateDir(path.dirname(this.file));
      writePrivateFileAtomic(this.file, JSON.stringify(this.driver.snapshot()));
    } catch (e) {
      this.log.error(`cannot save the VM records to ${this.file}: ${(e as Error).message}`);
    }
  }
}
