import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './driver.token';
import { AGENT_ENV, AgentEnv } from './config';

/**
 * Keeps the driver's VM records on disk (drivers that hold them in memory only), so that an agent that
 * was killed and restarted finds again the VMs it ran and reports them: nothing running is forgotten.
 */
@Injectable()
export class AgentStateStore implements OnModuleInit {
  private readonly log = new Logger('state');
  private readonly file: string;

  constructor(
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    @Inject(AGENT_ENV) env: AgentEnv,
  ) {
    const dir = env.AGENT_STATE_DIR ?? path.join(tmpdir(), 'flexmig-agent');
    this.file = path.join(dir, `${env.HOST_ID}.json`);
  }

  onModuleInit(): void {
    if (!this.driver.restore) return;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return; // first start
    }
    try {
      this.driver.restore(JSON.parse(text));
      const vms = this.driver.listVms();
      if (vms.length) this.log.log(`restored ${vms.length} VM(s) from ${this.file}: ${vms.map((v) => `${v.vmId} (${v.state})`).join(', ')}`);
    } catch (e) {
      this.log.error(`cannot read ${this.file} (${(e as Error).message}); starting with no VMs`);
    }
  }

  /** Writes atomically (temp file + rename): a crash mid-write leaves the previous state. */
  save(): void {
    if (!this.driver.snapshot) return;
    try {
      mkdirSync(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.driver.snapshot()));
      renameSync(tmp, this.file);
    } catch (e) {
      this.log.error(`cannot save the VM records to ${this.file}: ${(e as Error).message}`);
    }
  }
}
