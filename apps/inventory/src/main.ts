import 'reflect-metadata';
import { ensureDatabaseAndSchema } from '@flexmig/persistence';
import { authSettingsFromEnv, loadEnv, runMain, natsBusEnv, startService } from '@flexmig/service-kit';
import { INVENTORY_QUEUE, InventoryEnvSchema } from './config';
import { INVENTORY_SCHEMA, InventoryModule } from './inventory.module';
import { openApiInfo } from './openapi';

runMain('inventory', async () => {
  const env = loadEnv(InventoryEnvSchema);
  // before anything connects: a service without a way to check tokens says so and stops
  const auth = authSettingsFromEnv(env);
  await ensureDatabaseAndSchema(env.DATABASE_URL, INVENTORY_SCHEMA);
  await startService({
    ...openApiInfo,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    bus: natsBusEnv(env),
    queue: INVENTORY_QUEUE,
    auth,
    bodyLimitBytes: env.HTTP_BODY_LIMIT,
    module: (bus) =>
      InventoryModule.forRoot({
        bus,
        databaseUrl: env.DATABASE_URL,
        databasePoolSize: env.DATABASE_POOL_SIZE,
        config: {
          hostDownAfterMs: env.HOST_DOWN_AFTER_MS,
          hostCheckIntervalMs: env.HOST_CHECK_INTERVAL_MS,
          massSilence: { share: env.HOST_MASS_SILENCE_SHARE, minHosts: env.HOST_MASS_SILENCE_MIN },
          heartbeatFlushMs: env.HEARTBEAT_FLUSH_MS,
          vmStartTimeoutMs: env.VM_START_TIMEOUT_MS,
          reconcileIntervalMs: env.RECONCILE_INTERVAL_MS,
        },
      }),
  });
});
