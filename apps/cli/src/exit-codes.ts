/**
 * The CLI's exit codes (also in `flexmig --help` and docs/cli.md). Scripts branch on them, so they never
 * change meaning:
 * - 0: done;
 * - 1: a migration (or an evacuation's) ended failed, rolled back or cancelled, or the CLI itself failed;
 * - 2: usage: the command line is wrong (unknown command, missing argument, bad option value);
 * - 3: refused: the API answered 4xx (invalid request, no or wrong token, not found, conflict, ...);
 * - 4: unreachable: no answer from FLEXMIG_URL, a timeout, or the service behind it is unavailable (5xx).
 */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2, Refused: 3, Unreachable: 4 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const exitCodesHelp = `Exit codes:
  0  ok
  1  the migration (or a VM of the evacuation) failed, was rolled back or cancelled
  2  usage: the command line is wrong
  3  refused: the API answered 4xx (bad request, token missing or without the role, not found, conflict)
  4  unreachable: no answer from FLEXMIG_URL, a timeout, or the service is unavailable (5xx)
  130  interrupted (Ctrl-C): the CLI stops; a migration or evacuation it started goes on`;

/** An error the CLI reports as is (what failed, why, what to do) and exits with its code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** The API's error body, when there was one (printed with -o json|yaml). */
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, ExitCode.Usage);

/** What an HTTP status means for the caller's exit code: 4xx refused, 5xx unreachable. */
export function exitCodeOfStatus(status: number): ExitCode {
  if (status >= 400 && status < 500) return ExitCode.Refused;
  if (status >= 500) return ExitCode.Unreachable;
  return ExitCode.Ok;
}

/** What to do about a refusal, by status (the API's message says why). */
export function adviceOfStatus(status: number, code: string | undefined): string {
  if (status === 401) return 'give a valid bearer token: FLEXMIG_TOKEN, --token, or `token`/`tokenFile` in the config file (see `flexmig auth init`)';
  if (status === 403) return 'use a token with the role this needs (viewer reads, operator migrates and creates VMs, admin changes cluster modes)';
  if (status === 404 && code === 'NOT_FOUND') return 'check the name or id (list them with `flexmig hosts`, `flexmig vms`, `flexmig clusters`, `flexmig migrations`)';
  if (status === 404) return 'check FLEXMIG_URL: it should be the console (one URL for the API), e.g. http://127.0.0.1:3000';
  if (status === 400 || status === 413) return 'fix the request (see `flexmig <command> --help`)';
  if (status === 409 || status === 422) return 'the current state does not allow it: see the reason above';
  if (status >= 500) return 'retry; if it persists, check the services (their /health/ready) and their logs';
  return 'see the reason above';
}

/** Is this outcome of a migration a failure for the exit code? */
export const migrationFailed = (state: string) => state !== 'completed';
