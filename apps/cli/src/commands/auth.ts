import path from 'node:path';
import type { Command } from 'commander';
import { authDirPrefix, authFiles, defaultAuthDir, defaultMigrationNames, fleetRole, initAuthDir, issueAgent, issueRole, revokeAgent } from '@flexmig/nats-auth';

/**
 * `auth`: the identities of a deployment (NATS operator, account, service and agent users; HTTP bearer
 * tokens), written to a directory. See docs/security.md. These work on files: no URL nor token needed.
 */
export function registerAuth(program: Command): void {
  const auth = program.command('auth').description("a deployment's identities: NATS credentials, TLS certificates, HTTP tokens (docs/security.md)");
  const dirOption = ['--dir <dir>', 'the auth directory', defaultAuthDir] as const;

  auth
    .command('init')
    .description(
      'write what is missing in the directory: nats-server.conf, the service identities (inventory, scheduler, cpu-compat, console, subscriber, verifier .creds), ' +
        'the signing keys, jwt.secret and the HTTP tokens (admin, operator, viewer .token), and the CA (ca.pem) with a TLS certificate for nats-server',
    )
    .option(...dirOption)
    .option('--prefix <prefix>', 'the subject prefix the permissions are made for (default: SUBJECT_PREFIX, else flexmig)')
    .option('--force', 'replace what exists')
    .option('--no-tls', 'no CA and no TLS certificates')
    .action(async (o: { dir: string; prefix?: string; force?: boolean; tls: boolean }) => {
      const dir = path.resolve(o.dir);
      const r = await initAuthDir(dir, { prefix: o.prefix ?? process.env.SUBJECT_PREFIX, force: Boolean(o.force), tls: o.tls });
      console.log(`${dir} (subject prefix ${r.prefix})`);
      if (r.written.length) console.log(`  wrote: ${r.written.join(', ')}`);
      if (r.kept.length) console.log(`  kept:  ${r.kept.join(', ')}${o.force ? '' : ' (--force replaces them)'}`);
      console.log(`  run NATS with it: nats-server -c ${path.join(dir, authFiles.serverConfig)} -p 4222 -js -sd <store dir>`);
      console.log(`  each service: NATS_CREDS=${path.join(dir, '<service>.creds')}; HTTP admin token: ${path.join(dir, authFiles.token('admin'))}`);
    });

  auth
    .command('agent')
    .description("write <dir>/agent-<hostId>.creds (one host's agent identity) and <dir>/qemu-tls/<hostId>/ (its QEMU_TLS_DIR)")
    .argument('<hostId>')
    .option(...dirOption)
    .option('--address <address...>', `addresses other hosts' QEMUs connect to (IP or DNS name; default ${defaultMigrationNames.join(', ')})`)
    .action(async (hostId: string, o: { dir: string; address?: string[] }) => {
      const dir = path.resolve(o.dir);
      const issued = await issueAgent(dir, hostId, o.address?.length ? o.address : defaultMigrationNames);
      const tls = issued.qemuTlsDir ? ` QEMU_TLS_DIR=${issued.qemuTlsDir}` : '';
      console.log(`${issued.creds}${issued.qemuTlsDir ? `\n${issued.qemuTlsDir}/` : ''}\n  start the agent with HOST_ID=${hostId} NATS_CREDS=${issued.creds}${tls}`);
      if (!issued.qemuTlsDir) console.log(`  no QEMU migration certificates: ${dir} has no CA (made by \`flexmig auth init\` unless --no-tls)`);
    });

  auth
    .command('fleet')
    .description('write <dir>/fleet.creds: one identity for the sim fleet, which runs many hosts in one process (tests, benchmarks)')
    .option(...dirOption)
    .action(async (o: { dir: string }) => {
      const dir = path.resolve(o.dir);
      const file = await issueRole(dir, fleetRole);
      console.log(`${file}\n  covers every host of prefix ${authDirPrefix(dir)}: give it only to a sim fleet (node dist/apps/agent/fleet.js)`);
    });

  auth
    .command('revoke-agent')
    .description("revoke every identity issued to the host and rewrite nats-server.conf; --pid tells that nats-server to reload it")
    .argument('<hostId>')
    .option(...dirOption)
    .option('--pid <pid>', 'the nats-server to signal (otherwise: nats-server --signal reload=<pid>)')
    .action(async (hostId: string, o: { dir: string; pid?: string }) => {
      const dir = path.resolve(o.dir);
      const r = await revokeAgent(dir, hostId);
      console.log(`revoked ${r.revokedKeys.length} identit${r.revokedKeys.length === 1 ? 'y' : 'ies'} of host ${hostId}; rewrote ${r.serverConfig}`);
      if (o.pid) {
        process.kill(Number(o.pid), 'SIGHUP'); // what `nats-server --signal reload=<pid>` sends
        console.log(`  told nats-server ${o.pid} to reload: the host's connections are closed now`);
      } else {
        console.log('  apply it without a restart: nats-server --signal reload=<pid>');
      }
    });
}
