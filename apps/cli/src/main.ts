import path from 'node:path';
import { parseArgs } from 'node:util';
import { authDirPrefix, authFiles, defaultAuthDir, defaultMigrationNames, fleetRole, initAuthDir, issueAgent, issueRole, revokeAgent } from '@flexmig/nats-auth';

/**
 * `flexmig`: the operator's command line. For now its `auth` commands: the identities of a deployment
 * (NATS operator, account, service and agent users; HTTP bearer tokens). See docs/security.md.
 */
const usage = `usage:
  flexmig auth init [--dir D] [--prefix P] [--force] [--no-tls]
      writes what is missing in D (default ${defaultAuthDir}): nats-server.conf, the service identities
      (inventory, scheduler, cpu-compat, subscriber .creds), the signing keys (*.nk), jwt.secret and
      the HTTP tokens (admin, operator, viewer .token), and the deployment's CA (ca.pem) with a TLS
      certificate for nats-server (nats-server-tls.conf).
      P: the subject prefix the permissions are made for (default: SUBJECT_PREFIX, else flexmig).
  flexmig auth agent <hostId> [--dir D] [--address A]...
      writes D/agent-<hostId>.creds: the identity of one host's agent (the running server needs no change),
      and D/qemu-tls/<hostId>/: the host's QEMU_TLS_DIR (its migration certificates, from ca.pem), valid for
      the addresses A other hosts' QEMUs connect to (IP or DNS name; default ${defaultMigrationNames.join(', ')}).
  flexmig auth fleet [--dir D]
      writes D/fleet.creds: one identity for the sim fleet, which runs many hosts in one process (tests, benchmarks).
  flexmig auth revoke-agent <hostId> [--dir D] [--pid PID]
      revokes every identity issued to the host and rewrites D/nats-server.conf; with --pid, tells that
      nats-server to reload it (otherwise: nats-server --signal reload=<pid>).`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: defaultAuthDir },
      prefix: { type: 'string' },
      force: { type: 'boolean', default: false },
      'no-tls': { type: 'boolean', default: false },
      pid: { type: 'string' },
      address: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [group, command, arg] = positionals;
  if (values.help || group !== 'auth' || !command) throw new UsageError(values.help ? '' : 'expected an `auth` command');
  const dir = path.resolve(values.dir);
  switch (command) {
    case 'init': {
      const r = await initAuthDir(dir, { prefix: values.prefix ?? process.env.SUBJECT_PREFIX, force: values.force, tls: !values['no-tls'] });
      console.log(`${dir} (subject prefix ${r.prefix})`);
      if (r.written.length) console.log(`  wrote: ${r.written.join(', ')}`);
      if (r.kept.length) console.log(`  kept:  ${r.kept.join(', ')}${values.force ? '' : ' (--force replaces them)'}`);
      console.log(`  run NATS with it: nats-server -c ${path.join(dir, authFiles.serverConfig)} -p 4222 -js -sd <store dir>`);
      console.log(`  each service: NATS_CREDS=${path.join(dir, '<service>.creds')}; HTTP admin token: ${path.join(dir, authFiles.token('admin'))}`);
      return;
    }
    case 'agent': {
      if (!arg) throw new UsageError('which host? flexmig auth agent <hostId>');
      const issued = await issueAgent(dir, arg, values.address?.length ? values.address : defaultMigrationNames);
      const tls = issued.qemuTlsDir ? ` QEMU_TLS_DIR=${issued.qemuTlsDir}` : '';
      console.log(`${issued.creds}${issued.qemuTlsDir ? `\n${issued.qemuTlsDir}/` : ''}\n  start the agent with HOST_ID=${arg} NATS_CREDS=${issued.creds}${tls}`);
      if (!issued.qemuTlsDir) console.log(`  no QEMU migration certificates: ${dir} has no CA (made by \`flexmig auth init\` unless --no-tls)`);
      return;
    }
    case 'fleet': {
      const file = await issueRole(dir, fleetRole);
      console.log(`${file}\n  covers every host of prefix ${authDirPrefix(dir)}: give it only to a sim fleet (node dist/apps/agent/fleet.js)`);
      return;
    }
    case 'revoke-agent': {
      if (!arg) throw new UsageError('which host? flexmig auth revoke-agent <hostId>');
      const r = await revokeAgent(dir, arg);
      console.log(`revoked ${r.revokedKeys.length} identit${r.revokedKeys.length === 1 ? 'y' : 'ies'} of host ${arg}; rewrote ${r.serverConfig}`);
      if (values.pid) {
        process.kill(Number(values.pid), 'SIGHUP'); // what `nats-server --signal reload=<pid>` sends
        console.log(`  told nats-server ${values.pid} to reload: the host's connections are closed now`);
      } else {
        console.log('  apply it without a restart: nats-server --signal reload=<pid>');
      }
      return;
    }
    default:
      throw new UsageError(`unknown command auth ${command}`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    if (e.message) console.error(`flexmig: ${e.message}`);
    console.error(usage);
    process.exit(2);
  }
  console.error(`flexmig: ${(e as Error)?.message ?? e}`);
  process.exit(1);
});
