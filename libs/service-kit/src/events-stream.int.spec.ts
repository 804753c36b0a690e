/** The events stream's settings, from the environment (CommonEnvSchema) to the stream a real NATS creates. */
import { NatsBus } from '@flexmig/messaging';
import { startTestNats, TestNats } from '@flexmig/testing';
import { CommonEnvSchema, natsBusEnv } from './env';

describe('the events stream as EVENTS_STREAM_REPLICAS, EVENTS_MAX_AGE and EVENTS_MAX_BYTES configure it', () => {
  let nats: TestNats;
  let bus: NatsBus;
  beforeAll(async () => {
    nats = await startTestNats('stream-limits');
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('creates the stream with the given replicas, age and size, the dedup window within the age', async () => {
    const env = CommonEnvSchema.parse({ NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, EVENTS_MAX_AGE: '90s', EVENTS_MAX_BYTES: '1048576' });
    bus = await NatsBus.connect({ ...natsBusEnv(env), name: 'test' });
    await bus.ensureEventsStream();
    const { config } = await (await bus.jetstreamManager()).streams.info(bus.eventsStream);
    expect(config.num_replicas).toBe(1);
    expect(config.max_age).toBe(90_000 * 1_000_000);
    expect(config.max_bytes).toBe(1_048_576);
    expect(config.duplicate_window).toBe(90_000 * 1_000_000);
  });

  it('refuses values the schema does not allow, saying what it expects', () => {
    expect(() => CommonEnvSchema.parse({ EVENTS_STREAM_REPLICAS: '7' })).toThrow(/EVENTS_STREAM_REPLICAS|5/);
    expect(() => CommonEnvSchema.parse({ EVENTS_MAX_AGE: 'a week' })).toThrow(/a duration/);
    expect(CommonEnvSchema.parse({}).EVENTS_MAX_AGE).toBe(7 * 86_400_000);
  });
});
