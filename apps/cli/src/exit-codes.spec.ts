import { refusal } from './client';
import { adviceOfStatus, ExitCode, exitCodeOfStatus, migrationFailed } from './exit-codes';

describe('exit codes', () => {
  it('given an HTTP status, then 4xx is refused (3) and 5xx unreachable (4)', () => {
    expect([400, 401, 403, 404, 409, 413, 422].map(exitCodeOfStatus)).toEqual(Array(7).fill(ExitCode.Refused));
    expect([500, 502, 503, 504].map(exitCodeOfStatus)).toEqual(Array(4).fill(ExitCode.Unreachable));
    expect(exitCodeOfStatus(200)).toBe(ExitCode.Ok);
  });

  it('given a migration outcome, then only completed is success', () => {
    expect(['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].map(migrationFailed)).toEqual([false, true, true, true]);
  });

  it('given a refusal in the API error shape, then the message says what was asked, the code and reason, and what to do', () => {
    const e = refusal('POST /api/v1/migrations', { status: 422, body: { code: 'CPU_INCOMPATIBLE', message: 'host-b lacks avx2' } });
    expect(e.exitCode).toBe(3);
    expect(e.message).toBe('POST /api/v1/migrations was refused (422 CPU_INCOMPATIBLE): host-b lacks avx2. What to do: the current state does not allow it: see the reason above');
    expect(e.body).toEqual({ code: 'CPU_INCOMPATIBLE', message: 'host-b lacks avx2' });
  });

  it('given 401 or 403, then the advice says how to give a token or which role', () => {
    expect(refusal('GET /api/v1/hosts', { status: 401, body: { code: 'UNAUTHENTICATED', message: 'no bearer token' } }).message).toContain('FLEXMIG_TOKEN');
    expect(adviceOfStatus(403, 'FORBIDDEN')).toContain('role');
  });

  it('given a 404 that is not in the error shape (not the console), then the advice points at FLEXMIG_URL', () => {
    const e = refusal('GET /api/v1/hosts', { status: 404, body: '<html>Not Found</html>' });
    expect(e.message).toContain('<html>Not Found</html>');
    expect(e.message).toContain('check FLEXMIG_URL');
  });

  it('given a 503, then exit 4 with advice to retry and check the services', () => {
    const e = refusal('POST /api/v1/vms', { status: 503, body: { code: 'UNAVAILABLE', message: 'agent host-a did not answer' } });
    expect([e.exitCode, e.message.includes('retry')]).toEqual([4, true]);
  });
});
