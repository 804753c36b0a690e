import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createLogger, loadEnv, runMain } from '@flexmig/service-kit';
import { FleetEnvSchema, fleetOptionsFromEnv } from './fleet-config';
import { SimFleet } from './sim-fleet';

/**
 * `agent-fleet`: FLEET_SIZE simulated hosts in one process (sim driver only), each an agent on its
 * own subjects. No HTTP endpoint: watch it through inventory (hosts, heartbeats) or NATS.
 */
runMain('agent-fleet', async () => {
  const env = loadEnv(FleetEnvSchema);
  Logger.overrideLogger(createLogger('agent-fleet', { level: env.LOG_LEVEL, format: env.LOG_FORMAT }));
  const fleet = await SimFleet.start(fleetOptionsFromEnv(env));
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    new Logger('fleet').log(`${signal}: stopping ${fleet.hosts.length} simulated hosts`);
    fleet
      .stop()
      .then(() => process.exit(0))
      .catch((e: unknown) => {
        console.error(`agent-fleet did not stop cleanly: ${(e as Error)?.message ?? e}`);
        process.exit(1);
      });
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
});
