import { defaultPingIntervalMs } from '@flexmig/messaging';
import { CommonEnvSchema, natsBusEnv } from './env';

/**
 * NATS_PING_INTERVAL_MS keeps its default as a literal (deploy/deploy.spec.ts reads the schemas' defaults
 * from their source to check .env.example), and the bus has its own for callers without an environment
 * (tests, the sim fleet): the two must not drift apart.
 */
describe('CommonEnvSchema: the NATS ping interval', () => {
  it('given no NATS_PING_INTERVAL_MS, then a service pings as often as the bus does by default', () => {
    expect(natsBusEnv(CommonEnvSchema.parse({})).pingIntervalMs).toBe(defaultPingIntervalMs);
  });

  it('given one, then the bus gets it', () => {
    expect(natsBusEnv(CommonEnvSchema.parse({ NATS_PING_INTERVAL_MS: '2500' })).pingIntervalMs).toBe(2500);
  });
});
