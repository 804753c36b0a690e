/**
 * An agent restarted with VMs on record (the sim driver's state file), started as main.ts starts it, on
 * real NATS: its VMs are back before it takes its first command. Nest's hybrid start subscribes the NATS
 * handlers before it runs the modules' onModuleInit hooks; a restore there left a window in which a
 * restarted target agent answered step 6, a compensation or a VM list from an empty driver, and then
 * brought back an incoming VM that nobody destroyed (fault matrix: kill-target-agent@transfer-state).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { AgentVm, ListAgentVms, MigrationPolicySchema, StepCommand } from '@flexmig/contracts';
import { NatsBus, NatsContractTransport } from '@flexmig/messaging';
import { type RunningService } from '@flexmig/service-kit';
import { freePort, TestNats, startTestNats } from '@flexmig/testing';
import { AgentEnvSchema } from './config';
import { createDriver } from './drivers/create-driver';
import { AgentStateStore } from './state-store';
import { startAgentService } from './start-agent';

describe('an agent restarted with VMs on record', () => {
  let nats: TestNats;
  let client: NatsBus;
  let stateDir: string;
  let agent: RunningService | undefined;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    nats = await startTestNats('agent-restart');
    client = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'agent-restart-test', requestTimeoutMs: 2_000 });
  });
  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'fm-agent-restart-'));
  });
  afterEach(async () => {
    await agent?.close();
    agent = undefined;
    jest.restoreAllMocks();
    rmSync(stateDir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await client?.close();
    await nats?.stop();
  });

  it('has its VMs back before its NATS handlers listen, and reports them', async () => {
    const env = AgentEnvSchema.parse({ NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, HOST_ID: 'restarted', AGENT_STATE_DIR: stateDir, PORT: String(await freePort()), LOG_LEVEL: 'error' });
    // the agent before its kill: an incoming VM of a migration (step 2 done), on disk
    const before = createDriver(env);
    const vmId = randomUUID();
    const cmd: StepCommand = {
      migrationId: randomUUID(),
      step: 2,
      stepName: 'transfer-config',
      attempt: 1,
      role: 'target',
      vm: { id: vmId, name: 'guest', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' },
      sourceHostId: 'source',
      targetHostId: 'restarted',
      targetAddress: '127.0.0.1:49152',
      policy: MigrationPolicySchema.parse({}),
    };
    await before.prepareIncoming(cmd);
    new AgentStateStore(before, env).save();

    // the agent after it: what its driver holds at the moment the handlers subscribe
    const after = createDriver(env);
    const atListen: AgentVm[][] = [];
    const listen = NatsContractTransport.prototype.listen;
    jest.spyOn(NatsContractTransport.prototype, 'listen').mockImplementation(function (this: NatsContractTransport, callback) {
      atListen.push(after.listVms());
      return listen.call(this, callback);
    });
    agent = await startAgentService(env, after);

    const incoming = { vmId, state: 'incoming', migrationId: cmd.migrationId };
    expect(atListen).toEqual([[expect.objectContaining(incoming)]]);
    const { vms } = await client.request(ListAgentVms, {}, { params: { hostId: 'restarted' } });
    expect(vms).toEqual([expect.objectContaining(incoming)]);
  });
});
