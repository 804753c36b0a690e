import { loadEnv, runMain } from '@flexmig/service-kit';
import { DrainWatcherEnvSchema } from './drain/config';
import { DrainWatcher } from './drain/drain-watcher';
import { FlexmigApi } from './drain/flexmig-api';
import { startSmallServer } from './http-server';
import { kubeConfig } from './kube-client';

runMain('drain-watcher', async () => {
  const env = loadEnv(DrainWatcherEnvSchema);
  const watcher = new DrainWatcher(kubeConfig(), new FlexmigApi(env.SCHEDULER_URL, env.INVENTORY_URL, env.FLEXMIG_TOKEN_FILE), {
    nodeSelector: env.NODE_SELECTOR,
    hostIdLabel: env.HOST_ID_LABEL,
    followIntervalMs: env.FOLLOW_INTERVAL_MS,
  });
  const server = await startSmallServer({ port: env.PORT, host: env.LISTEN_HOST, bodyLimit: 0, routes: {}, ready: () => watcher.ready });
  await watcher.start();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void watcher.stop().finally(() => server.close(() => process.exit(0))));
  }
});
