#!/usr/bin/env node
// `npm start`: the whole flexmig stack on this machine until stopped (Ctrl-C): cpu-compat, inventory,
// scheduler, and three `sim` agents on hosts of different CPU generations, in the cluster `default`.
import path from 'node:path';
import { bold, cyan, demoHosts, dim, ensureBuilt, localAuth, preflight, PreflightError, Processes, red, yellow } from './lib.mjs';

const env = {
  NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig',
  SUBJECT_PREFIX: process.env.SUBJECT_PREFIX ?? 'flexmig',
};
const ports = { inventory: 3001, scheduler: 3002, 'cpu-compat': 3003 };

async function main() {
  ensureBuilt(['inventory', 'scheduler', 'cpu-compat', 'agent']);
  await preflight({ natsUrl: env.NATS_URL, databaseUrl: env.DATABASE_URL });
  // bearer tokens are on: the services check them with .flexmig/auth/jwt.secret (made on first start)
  const auth = await localAuth();
  Object.assign(env, auth.env);
  const procs = new Processes({ echo: true });
  const shutdown = async (code) => {
    console.log(dim('\nstopping flexmig…'));
    await procs.stopAll();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  procs.onExit = (name, code, signal) => {
    console.error(red(`${name} stopped unexpectedly (code ${code}, signal ${signal}); stopping the stack`));
    void shutdown(1);
  };
  const services = Object.entries(ports).map(([app, port]) => procs.start(app, app, { ...env, PORT: String(port) }));
  await Promise.all(services.map((s) => procs.waitReady(s)));
  const agents = demoHosts.map((h, i) =>
    procs.start(h.id, 'agent', {
      ...env,
      HOST_ID: h.id,
      CLUSTER_NAME: process.env.CLUSTER_NAME ?? 'default',
      SIM_CPU: h.cpu,
      PORT: String(3011 + i),
      MIGRATION_ADDRESS: `127.0.0.1:${49152 + i}`,
    }),
  );
  await Promise.all(agents.map((a) => procs.waitReady(a)));
  const bearer = `-H "authorization: Bearer $(cat ${path.relative(process.cwd(), auth.tokenFiles.admin)})"`;
  console.log(
    [
      '',
      bold('flexmig is running.') + ' Ctrl-C stops it.',
      `  inventory   ${cyan('http://127.0.0.1:3001/api/docs')}`,
      `  scheduler   ${cyan('http://127.0.0.1:3002/api/docs')}`,
      `  cpu-compat  ${cyan('http://127.0.0.1:3003/api/docs')}`,
      `  agents      ${demoHosts.map((h) => `${h.id} (${h.cpu})`).join(', ')}`,
      '',
      `  every API call needs a bearer token: admin ${cyan(path.relative(process.cwd(), auth.tokenFiles.admin))}` +
        ` (also operator.token, viewer.token beside it)`,
      ...(process.env.AUTH === 'off' ? [yellow('  AUTH=off: the services check no token (a developer loop only)')] : []),
      dim(`  curl -s localhost:3001/api/v1/hosts ${bearer}`),
      dim(`  curl -s -XPOST localhost:3001/api/v1/vms ${bearer} -H 'content-type: application/json' -d '{"name":"vm1","hostId":"host-c","memoryMiB":2048,"vcpus":2}'`),
      dim(`  curl -s -XPOST localhost:3002/api/v1/migrations ${bearer} -H 'content-type: application/json' -d '{"vmId":"<id>","targetHostId":"host-a"}'`),
      '',
    ].join('\n'),
  );
}

main().catch((e) => {
  console.error(red(e instanceof PreflightError ? `flexmig cannot start: ${e.message}` : e.stack));
  process.exit(1);
});
