import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { jwtVerify } from 'jose';
import { appEntry, freePort, launch, waitFor, type Launched } from '@flexmig/testing';

/** The built CLI (`npx flexmig` runs the same file) against a temporary directory, and a nats-server run as the docs say. */
describe('flexmig auth (the built CLI)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-cli-'));
  const auth = path.join(dir, 'auth');
  const cli = (...args: string[]) => execFileSync(process.execPath, [appEntry('cli'), ...args], { encoding: 'utf8', env: { ...process.env, SUBJECT_PREFIX: 'clitest' } });
  let server: Launched | undefined;

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given an empty directory, when `auth init` runs, then it writes the configuration, the identities and the tokens, secrets 0600', () => {
    cli('auth', 'init', '--dir', auth);
    for (const f of ['nats-server.conf', 'nats-server-tls.conf', 'ca.pem', 'auth.json']) expect(statSync(path.join(auth, f)).isFile()).toBe(true);
    for (const f of ['inventory.creds', 'scheduler.creds', 'cpu-compat.creds', 'subscriber.creds', 'console.creds', 'verifier.creds', 'account-signing.nk', 'operator.nk', 'jwt.secret', 'admin.token', 'operator.token', 'viewer.token', 'ca.key', 'nats-server-key.pem']) {
      expect([f, statSync(path.join(auth, f)).mode & 0o777]).toEqual([f, 0o600]);
    }
    expect(Buffer.from(readFileSync(path.join(auth, 'jwt.secret'), 'utf8').trim(), 'base64url').length).toBeGreaterThanOrEqual(32);
  });

  it('given `auth agent <host> --address`, then the host gets its QEMU_TLS_DIR: certificates of the deployment CA for those addresses, keys 0600', () => {
    const out = cli('auth', 'agent', 'host-q', '--dir', auth, '--address', '10.20.30.40', '--address', 'host-q.example');
    const tlsDir = path.join(auth, 'qemu-tls', 'host-q');
    expect(out).toContain(`QEMU_TLS_DIR=${tlsDir}`);
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    for (const f of ['server-key.pem', 'client-key.pem']) expect([f, statSync(path.join(tlsDir, f)).mode & 0o777]).toEqual([f, 0o600]);
    expect(readFileSync(path.join(tlsDir, 'ca-cert.pem'), 'utf8')).toBe(readFileSync(path.join(auth, 'ca.pem'), 'utf8'));
    for (const [endpoint, purpose] of [['server', 'sslserver'], ['client', 'sslclient']]) {
      const cert = path.join(tlsDir, `${endpoint}-cert.pem`);
      // chains to ca.pem, and is for the endpoint's purpose (extended key usage)
      expect(execFileSync('openssl', ['verify', '-CAfile', path.join(auth, 'ca.pem'), '-purpose', purpose, cert], { encoding: 'utf8' })).toMatch(/OK/);
      const text = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
      expect(text).toMatch(/IP Address:10\.20\.30\.40/);
      expect(text).toMatch(/DNS:host-q\.example/);
    }
    // a server certificate is not a client one: the purpose check can fail
    expect(() => execFileSync('openssl', ['verify', '-CAfile', path.join(auth, 'ca.pem'), '-purpose', 'sslclient', path.join(tlsDir, 'server-cert.pem')], { stdio: 'pipe' })).toThrow();
  });

  it('given `auth revoke-agent`, then the host\'s creds and QEMU certificates are removed', () => {
    cli('auth', 'agent', 'host-r', '--dir', auth);
    expect(statSync(path.join(auth, 'qemu-tls', 'host-r', 'server-cert.pem')).isFile()).toBe(true);
    expect(cli('auth', 'revoke-agent', 'host-r', '--dir', auth)).toMatch(/revoked 1 identity of host host-r/);
    expect(() => statSync(path.join(auth, 'qemu-tls', 'host-r'))).toThrow(/ENOENT/);
    expect(() => statSync(path.join(auth, 'agent-host-r.creds'))).toThrow(/ENOENT/);
  });

  it('given the tokens, then each is an HS256 JWT of the secret with the agreed claims, valid for a year', async () => {
    const key = new Uint8Array(Buffer.from(readFileSync(path.join(auth, 'jwt.secret'), 'utf8').trim(), 'base64url'));
    for (const role of ['admin', 'operator', 'viewer']) {
      const { payload, protectedHeader } = await jwtVerify(readFileSync(path.join(auth, `${role}.token`), 'utf8').trim(), key, { issuer: 'flexmig', audience: 'flexmig' });
      expect(protectedHeader.alg).toBe('HS256');
      expect(payload).toMatchObject({ sub: role, roles: [role] });
      expect(payload.exp! - payload.iat!).toBe(365 * 24 * 3600);
    }
  });

  it('given an existing directory, when `auth init` runs again, then it keeps every file and makes only the missing ones', () => {
    const before = readFileSync(path.join(auth, 'scheduler.creds'), 'utf8');
    writeFileSync(path.join(auth, 'viewer.token'), 'kept\n', { mode: 0o600 });
    expect(cli('auth', 'init', '--dir', auth)).toMatch(/kept:/);
    expect(readFileSync(path.join(auth, 'scheduler.creds'), 'utf8')).toBe(before);
    expect(readFileSync(path.join(auth, 'viewer.token'), 'utf8')).toBe('kept\n');
    rmSync(path.join(auth, 'viewer.token'));
    cli('auth', 'init', '--dir', auth);
    expect(readFileSync(path.join(auth, 'viewer.token'), 'utf8')).not.toBe('kept\n'); // a missing file is made again
  });

  it('given `nats-server -c D/nats-server.conf -p PORT -js -sd DIR`, then a service identity and a host issued afterwards connect, and a client without identity is refused', async () => {
    const port = await freePort();
    server = launch('nats-server', ['-c', path.join(auth, 'nats-server.conf'), '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', path.join(dir, 'store')]);
    const url = `nats://127.0.0.1:${port}`;
    const scheduler = await waitFor('nats-server to accept the scheduler', () =>
      connect({ servers: url, authenticator: credsAuthenticator(readFileSync(path.join(auth, 'scheduler.creds'))), inboxPrefix: '_INBOX.scheduler' }).catch(() => undefined),
    );
    expect(cli('auth', 'agent', 'host-z', '--dir', auth)).toContain('agent-host-z.creds');
    const agent = await connect({ servers: url, authenticator: credsAuthenticator(readFileSync(path.join(auth, 'agent-host-z.creds'))), inboxPrefix: '_INBOX.host-z' });
    const sub = agent.subscribe('clitest.agent.host-z.vm.list', { max: 1 });
    void (async () => {
      for await (const m of sub) m.respond(new TextEncoder().encode('"host-z here"'));
    })();
    await agent.flush();
    expect((await scheduler.request('clitest.agent.host-z.vm.list', new Uint8Array(), { timeout: 2_000 })).string()).toBe('"host-z here"');
    await expect(connect({ servers: url, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization Violation/i);
    await agent.close();
    await scheduler.close();
  });
});
