import 'reflect-metadata';
import { ensureDatabaseAndSchema } from '@flexmig/persistence';
import { authSettingsFromEnv, loadEnv, runMain, natsBusEnv, startService } from '@flexmig/service-kit';
import { SchedulerEnvSchema } from './config';
import { SCHEDULER_SCHEMA, SchedulerModule } from './scheduler.module';
import { openApiInfo } from './openapi';

runMain('scheduler', async () => {
  const env = loadEnv(SchedulerEnvSchema);
  // before anything connects: a service without a way to check tokens says so and stops
  const auth = authSettingsFromEnv(env);
  await ensureDatabaseAndSchema(env.DATABASE_URL, SCHEDULER_SCHEMA);
  await startService({
    ...openApiInfo,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    bus: natsBusEnv(env),
    auth,
    bodyLimitBytes: env.HTTP_BODY_LIMIT,
    module: (bus) =>
      SchedulerModule.forRoot({
        bus,
        databaseUrl: env.DATABASE_URL,
        config: {
          schedulerId: env.SCHEDULER_ID,
          leaseTtlMs: env.LEASE_TTL_MS,
          reconcileIntervalMs: env.RECONCILE_INTERVAL_MS,
          stepDelayMs: env.STEP_DELAY_MS,
          stepTimeoutMs: env.STEP_TIMEOUT_MS,
          outcomeUnknownLimitMs: env.OUTCOME_UNKNOWN_LIMIT_MS,
          prediction: { assumedBandwidthMiBps: env.PREDICTION_ASSUMED_BANDWIDTH_MIBPS, dirtyRateMaxAgeMs: env.PREDICTION_DIRTY_RATE_MAX_AGE_MS, waitMs: env.PREDICTION_WAIT_MS },
          limits: { maxOutboundPerHost: env.MAX_OUTBOUND_PER_HOST, maxInboundPerHost: env.MAX_INBOUND_PER_HOST, maxPerCluster: env.MAX_PER_CLUSTER },
        },
      }),
  });
});
