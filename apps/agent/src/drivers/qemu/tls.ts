/**
 * QEMU to QEMU over TLS: `tls-creds-x509` objects on both ends (reference/qemu-migration.md; QEMU's
 * docs/devel/migration "TLS"). Each host has its own directory (QEMU_TLS_DIR) in QEMU's layout:
 *
 *   ca-cert.pem                       the CA this host trusts for its peers
 *   server-cert.pem, server-key.pem   presented when this host is a migration target
 *   client-cert.pem, client-key.pem   presented when this host is a migration source
 *
 * Both ends verify the peer (`verify-peer`): the source checks that the target's certificate comes from
 * its CA and names the address it connects to (the host part of the stream's tcp: URI, so a certificate
 * for an IP needs it as a subjectAltName IP), the target that the source's comes from its CA. A target
 * whose certificate the source does not trust fails the stream at once; the VM keeps running on the source.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { QmpClient, QmpError } from './qmp-client';

export type TlsEndpoint = 'server' | 'client';

/** One object per endpoint: a VM that came in as a target (server) may later leave as a source (client). */
export const tlsCredsId = (endpoint: TlsEndpoint) => `flexmig-tls-${endpoint}`;

const filesOf: Record<TlsEndpoint, string[]> = {
  server: ['ca-cert.pem', 'server-cert.pem', 'server-key.pem'],
  client: ['ca-cert.pem', 'client-cert.pem', 'client-key.pem'],
};

/** Says at start which file of QEMU_TLS_DIR is missing or unreadable, rather than at the first migration. */
export function checkTlsDir(dir: string): void {
  const missing = [...new Set([...filesOf.server, ...filesOf.client])].filter((f) => {
    try {
      accessSync(join(dir, f), constants.R_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `QEMU_TLS_DIR ${dir} lacks ${missing.join(', ')} (QEMU's tls-creds-x509 layout: ca-cert.pem, server-*.pem, client-*.pem)`, {
      dir,
      missing,
    });
  }
}

/**
 * Adds the credentials object of `endpoint` to a QEMU (once; a repeat finds it there) and returns the
 * migration parameter that makes the stream use it.
 */
export async function useTls(qmp: QmpClient, dir: string, endpoint: TlsEndpoint): Promise<{ 'tls-creds': string }> {
  const id = tlsCredsId(endpoint);
  try {
    await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id, dir, endpoint, 'verify-peer': true });
  } catch (e) {
    // "attempt to add duplicate property 'flexmig-tls-…'": added by an earlier attempt of the same step
    if (!(e instanceof QmpError && /duplicate/i.test(e.desc))) throw e;
  }
  return { 'tls-creds': id };
}

/**
 * Asks QEMU which credentials its next stream uses, and refuses to go on when they are not ours: the
 * guest's memory never leaves in cleartext on a host configured for TLS. Returns a line for the log.
 */
export async function confirmTls(qmp: QmpClient, dir: string, endpoint: TlsEndpoint): Promise<string> {
  const params = await qmp.execute<{ 'tls-creds'?: string }>('query-migrate-parameters');
  const inUse = params['tls-creds'];
  if (inUse !== tlsCredsId(endpoint)) {
    throw new FlexmigError(
      ErrorCode.AgentFailed,
      `QEMU reports tls-creds ${JSON.stringify(inUse ?? '')}, not ${tlsCredsId(endpoint)}: refusing to migrate in cleartext (QEMU_TLS_DIR=${dir}); check the agent's log for the object-add error`,
      { dir, inUse: inUse ?? null },
    );
  }
  return `over TLS (QEMU's tls-creds ${inUse}, tls-creds-x509 of ${dir}, the peer verified against its ca-cert.pem)`;
}
