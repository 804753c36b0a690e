import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';

/**
 * X.509 certificates of a deployment's own CA, made with the `openssl` command (Debian's `openssl`
 * package): the NATS server's certificate, each host's QEMU migration certificates, a test PostgreSQL's.
 * EC P-256 keys (fast to make; NATS, gnutls in QEMU and PostgreSQL accept them). Keys are written 0600.
 */

export interface CaFiles {
  cert: string;
  key: string;
}

export type CertificateUsage = 'server' | 'client';

export interface CertificateRequest {
  ca: CaFiles;
  /** Where the certificate and its key go. */
  cert: string;
  key: string;
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for (subjectAltName). */
  names: string[];
  usage: CertificateUsage[];
  days?: number;
}

/** 825 days: the longest validity TLS clients accept for a server certificate. */
const defaultDays = 825;

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer; message: string };
    if (err.code === 'ENOENT') throw new Error('the openssl command is not installed (Debian: apt-get install -y openssl); it makes the TLS certificates');
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim().split('\n')[0] || err.message}`);
  }
}

const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA (`cert`, and its `key` at 0600). */
export function makeCa(files: CaFiles, commonName: string, days = defaultDays): CaFiles {
  for (const f of [files.cert, files.key]) mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
  openssl(['req', '-x509', ...keyArgs, '-days', String(days), '-subj', `/CN=${commonName}`, '-keyout', files.key, '-out', files.cert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  chmodSync(files.key, 0o600);
  return files;
}

/** `subjectAltName` entries: an IP address as `IP:`, anything else as `DNS:`. */
export function subjectAltNames(names: string[]): string {
  if (names.length === 0) throw new Error('a certificate needs at least one name (DNS name or IP address)');
  return names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
}

/** A certificate (and its key at 0600) signed by `ca`, for the names and usages asked. */
export function issueCertificate(r: CertificateRequest): void {
  const work = mkdtempSync(path.join(tmpdir(), 'flexmig-cert-'));
  try {
    const csr = path.join(work, 'req.csr');
    const ext = path.join(work, 'req.ext');
    const eku = r.usage.map((u) => (u === 'server' ? 'serverAuth' : 'clientAuth')).join(',');
    writeFileSync(ext, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`, `subjectAltName=${subjectAltNames(r.names)}`, ''].join('\n'));
    for (const f of [r.cert, r.key]) mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
    openssl(['req', ...keyArgs, '-subj', `/CN=${r.commonName}`, '-keyout', r.key, '-out', csr]);
    chmodSync(r.key, 0o600);
    openssl(['x509', '-req', '-in', csr, '-CA', r.ca.cert, '-CAkey', r.ca.key, '-CAcreateserial', '-CAserial', path.join(work, 'ca.srl'),
      '-days', String(r.days ?? defaultDays), '-extfile', ext, '-out', r.cert]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The files of one host's QEMU_TLS_DIR, in QEMU's `tls-creds-x509` layout. */
export const qemuTlsFiles = ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem'] as const;

/**
 * A host's QEMU_TLS_DIR: the CA it trusts for its peers (`ca-cert.pem`), the certificate it shows as a
 * migration target (`server-*`, valid for `names`: the addresses its migration streams arrive on) and the
 * one it shows as a source (`client-*`). The directory is 0700.
 */
export function writeQemuTlsDir(dir: string, ca: CaFiles, hostId: string, names: string[], days = defaultDays): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  copyFileSync(ca.cert, path.join(dir, 'ca-cert.pem'));
  for (const usage of ['server', 'client'] as const) {
    issueCertificate({ ca, cert: path.join(dir, `${usage}-cert.pem`), key: path.join(dir, `${usage}-key.pem`), commonName: hostId, names, usage: [usage], days });
  }
  return dir;
}
