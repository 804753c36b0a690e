#!/usr/bin/env node
// `npm start`: the whole flexmig stack on this machine until stopped (Ctrl-C): cpu-compat, inventory,
// scheduler, the console in front of them (one URL, FLEXMIG_URL: http://127.0.0.1:3000), and three `sim`
// agents on hosts of different CPU generations, in the cluster `default`.
// Secure by default: identities and tokens in .flexmig/auth (generated when missing), a nats-server of its
// own in operator mode on 127.0.0.1:4333 (STACK_NATS_PORT), each process with its own NATS identity.
// `AUTH=off` runs as before, on the NATS of NATS_URL, without identities.
import path from 'node:path';
import { authDir, authOff, bold, cyan, demoHosts, dim, ensureBuilt, localAuth, plainNats, preflight, PreflightError, Processes, red, startSecureNats, yellow } from './lib.mjs';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig';
const ports = { inventory: 3001, scheduler: 3002, 'cpu-compat': 3003 };
const consolePort = 3000;
const serviceUrls = { INVENTORY_URL: `http://127.0.0.1:${ports.inventory}`, SCHEDULER_URL: `http://127.0.0.1:${ports.scheduler}`, CPU_COMPAT_URL: `http://127.0.0.1:${ports['cpu-compat']}` };
const flexmigUrl = `http://127.0.0.1:${consolePort}`;
/** Not 4222: a NATS without authentication may already run there (the tests' shared server, or AUTH=off). */
const natsPort = Number(process.env.STACK_NATS_PORT ?? 4333);

const procs = new Processes({ echo: true });

async function main() {
  ensureBuilt(['inventory', 'scheduler', 'cpu-compat', 'console', 'agent', 'cli']);
  await preflight({ natsUrl: authOff() ? (process.env.NATS_URL ?? 'nats://127.0.0.1:4222') : undefined, databaseUrl });
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
  const nats = authOff() ? await plainNats(process.env.NATS_URL ?? 'nats://127.0.0.1:4222') : await startSecureNats(procs, { name: 'stack', port: natsPort });
  // bearer tokens: the services check them with .flexmig/auth/jwt.secret (made by auth init, or here when missing)
  const auth = await localAuth();
  // the services write to our pipe, not a terminal: they log as we would (text on a terminal, else JSON)
  const logFormat = process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'text' : 'json');
  const env = { NATS_URL: nats.url, DATABASE_URL: databaseUrl, SUBJECT_PREFIX: nats.prefix ?? process.env.SUBJECT_PREFIX ?? 'flexmig', LOG_FORMAT: logFormat, ...auth.env };
  const services = Object.entries(ports).map(([app, port]) => procs.start(app, app, { ...env, ...nats.serviceEnv(app), PORT: String(port) }));
  await Promise.all(services.map((s) => procs.waitReady(s)));
  // the one URL: /api/v1 routed to the services above, and the live streams
  await procs.waitReady(procs.start('console', 'console', { ...env, ...nats.serviceEnv('console'), ...serviceUrls, PORT: String(consolePort) }));
  const agents = demoHosts.map((h, i) =>
    procs.start(h.id, 'agent', {
      ...env,
      ...nats.agentEnv(h.id),
      HOST_ID: h.id,
      CLUSTER_NAME: process.env.CLUSTER_NAME ?? 'default',
      SIM_CPU: h.cpu,
      PORT: String(3011 + i),
      MIGRATION_ADDRESS: `127.0.0.1:${49152 + i}`,
    }),
  );
  await Promise.all(agents.map((a) => procs.waitReady(a)));
  const token = path.relative(process.cwd(), path.join(authDir, 'operator.token'));
  const bearer = authOff() ? '' : ` -H "authorization: Bearer $(cat ${token})"`;
  console.log(
    [
      '',
      bold('flexmig is running.') + ' Ctrl-C stops it.',
      `  FLEXMIG_URL ${cyan(flexmigUrl)}  the whole API (${flexmigUrl}/api/v1/openapi.json) and live events (SSE)`,
      authOff() ? null : `  admin token ${path.relative(process.cwd(), path.join(authDir, 'admin.token'))}  (export FLEXMIG_TOKEN=$(cat ${path.relative(process.cwd(), path.join(authDir, 'admin.token'))}))`,
      `  inventory   ${cyan('http://127.0.0.1:3001/api/docs')}`,
      `  scheduler   ${cyan('http://127.0.0.1:3002/api/docs')}`,
      `  cpu-compat  ${cyan('http://127.0.0.1:3003/api/docs')}`,
      `  agents      ${demoHosts.map((h) => `${h.id} (${h.cpu})`).join(', ')}`,
      authOff()
        ? yellow(`  AUTH=off: NATS ${nats.url} without identities and HTTP without tokens; anyone who reaches them can command the agents`)
        : `  NATS        ${nats.url}, operator mode: every process has its own identity in ${path.relative(process.cwd(), authDir)}/ (docs/security.md)\n` +
          `  HTTP tokens ${path.relative(process.cwd(), authDir)}/{admin,operator,viewer}.token (bearer JWTs; admin: ${path.relative(process.cwd(), path.join(authDir, 'admin.token'))})\n` +
          `  revoke a host: npx flexmig auth revoke-agent <hostId> --pid $(cat ${path.relative(process.cwd(), nats.pidFile)})`,
      '',
      dim(`  curl -s${bearer} ${flexmigUrl}/api/v1/hosts`),
      dim(`  curl -s${bearer} -XPOST ${flexmigUrl}/api/v1/vms -H 'content-type: application/json' -d '{"name":"vm1","hostId":"host-c","memoryMiB":2048,"vcpus":2}'`),
      dim(`  curl -s${bearer} -XPOST ${flexmigUrl}/api/v1/migrations -H 'content-type: application/json' -d '{"vmId":"<id>","targetHostId":"host-a"}'`),
      dim(`  curl -sN${bearer} ${flexmigUrl}/api/v1/migrations/<id>/events`),
      '',
    ]
      .filter((line) => line !== null)
      .join('\n'),
  );
}

main().catch(async (e) => {
  console.error(red(e instanceof PreflightError ? `flexmig cannot start: ${e.message}` : e.stack));
  await procs.stopAll(); // nats-server and whatever had started
  process.exit(1);
});
