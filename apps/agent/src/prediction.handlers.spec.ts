import 'reflect-metadata';
import { LINK_SINK_MAX_BYTES, OpenLinkSink, ProbeLink } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv } from './config';
import { HypervisorDriver } from './drivers/driver';
import { SimDriver } from './drivers/sim.driver';
import { PredictionHandlers } from './prediction.handlers';

const env = { HOST_ID: 'host-x' } as AgentEnv;
const sim = () => new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });

describe('the link sink and probe handlers (agent.{hostId}.link.sink, agent.{hostId}.link.probe)', () => {
  it('given the sim driver, then the sink answers that none is needed and the probe answers the model link towards any address', async () => {
    const h = new PredictionHandlers(sim(), env);
    const sink = OpenLinkSink.reply.parse(await h.openLinkSink({ sourceHostId: 'host-a' }));
    expect(sink).toMatchObject({ address: null, expiresAt: null, detail: expect.stringContaining('needs no link sink') });
    const probe = ProbeLink.reply.parse(await h.probeLink({ targetHostId: 'host-y', targetAddress: '10.0.0.9:49152' }));
    expect(probe).toMatchObject({ origin: 'model', bandwidthBytesPerSec: 1250 * 1024 * 1024 });
  });

  it('given a driver with a sink, then the handler passes the byte cap asked for, or the most, and answers the address and expiry', async () => {
    const asked: number[] = [];
    const expiresAt = new Date(Date.now() + 10_000);
    const driver = Object.assign(sim() as unknown as HypervisorDriver, {
      openLinkSink: async (_source: string, maxBytes: number) => {
        asked.push(maxBytes);
        return { address: '10.0.0.2:47310', expiresAt };
      },
    });
    const h = new PredictionHandlers(driver, env);
    expect(OpenLinkSink.reply.parse(await h.openLinkSink({ sourceHostId: 'host-a', maxBytes: 2 ** 20 }))).toMatchObject({ address: '10.0.0.2:47310', expiresAt: expiresAt.toISOString() });
    await h.openLinkSink({ sourceHostId: 'host-a' });
    expect(asked).toEqual([2 ** 20, LINK_SINK_MAX_BYTES]);
  });

  it('given a byte cap outside 1 MiB–2 GiB, then the contract refuses it', () => {
    expect(OpenLinkSink.request.safeParse({ sourceHostId: 'host-a', maxBytes: 1000 }).success).toBe(false);
    expect(OpenLinkSink.request.safeParse({ sourceHostId: 'host-a', maxBytes: LINK_SINK_MAX_BYTES + 1 }).success).toBe(false);
  });
});
