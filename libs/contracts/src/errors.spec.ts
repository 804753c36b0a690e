import { z } from 'zod';
import { ErrorCode, FlexmigError, transientFailure, validationError } from './errors';

describe('transientFailure: a dependency down for a moment is retryable UNAVAILABLE, anything else is not', () => {
  const pg = (code: string, message = 'x') => Object.assign(new Error(message), { code });

  it.each([
    ['PostgreSQL shutting down (57P01, an immediate stop)', pg('57P01', 'terminating connection due to administrator command')],
    ['PostgreSQL starting up (57P03)', pg('57P03', 'the database system is starting up')],
    ['a connection failure (class 08)', pg('08006', 'connection failure')],
    ['a lost race (40001)', pg('40001', 'could not serialize access')],
    ['a refused socket', pg('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ["node-postgres's words", new Error('Connection terminated unexpectedly')],
    ["TypeORM's QueryFailedError around it", Object.assign(new Error('query failed'), { driverError: pg('57P01') })],
  ])('%s', (_what, e) => {
    const t = transientFailure(e);
    expect(t).toBeInstanceOf(FlexmigError);
    expect(t).toMatchObject({ code: ErrorCode.Unavailable, retryable: true });
  });

  it.each([
    ['a unique violation (23505)', pg('23505', 'duplicate key')],
    ['a syntax error (42601)', pg('42601', 'syntax error')],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['a typed error (already says what it is)', new FlexmigError(ErrorCode.Internal, 'Connection terminated')],
    ['not an object', 'ECONNREFUSED'],
  ])('%s', (_what, e) => expect(transientFailure(e)).toBeUndefined());
});

describe('validationError', () => {
  it('names the bad fields', () => {
    const e = validationError('the body', z.object({ a: z.number(), b: z.string() }).strict().safeParse({ a: 'x' }).error!);
    expect(e.code).toBe('VALIDATION_FAILED');
    expect((e.details as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['a', 'b']);
  });

  it('stays small whatever the input: 20 issues at most, each clipped, and the count of the rest', () => {
    const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
    const many = z.object({ ...Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, z.string()])) }).strict();
    const e = validationError('the body', many.safeParse(wide).error!);
    const details = e.details as { issues: { path: string; message: string }[]; moreIssues: number };
    expect(details.issues).toHaveLength(20);
    expect(details.moreIssues).toBeGreaterThan(0);
    expect(e.message).toContain(`and ${details.moreIssues} more issue(s)`);
    expect(JSON.stringify({ message: e.message, details }).length).toBeLessThan(20_000);
    // the unknown-keys issue names 100,000 keys: clipped
    const unknown = validationError('the body', z.object({}).strict().safeParse(wide).error!);
    expect(unknown.message.length).toBeLessThan(1_000);
  });
});
