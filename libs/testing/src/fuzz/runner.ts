import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { HostIdSchema, UuidSchema } from '@flexmig/contracts';
import { defaultTestToken } from '../auth';
import { repoRoot } from '../processes';
import { type Category, CATEGORIES, encodeBody, inputArbitrary, mutatedArbitrary, samples, type WireBody } from './inputs';
import { type HttpTarget, type NatsTarget, schemaOfNatsTarget } from './targets';
import { FUZZ_HOST_ID, type FuzzStack } from './stack';
import { boundaryArbitrary, type Seeds, validArbitrary } from './zod-arbitrary';

/** Inputs per route or subject and category: FUZZ_RUNS (small for `npm test`, larger in CI). */
export const fuzzRuns = (): number => Number(process.env.FUZZ_RUNS ?? 2);
/** The seed of every sample (FUZZ_SEED reproduces a run; it is printed with the results). */
export const fuzzSeed = (): number => Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

export type TallyKey = Category | 'no-token' | 'subject-token';

export interface Tally {
  sent: number;
  /** Outcome (HTTP status and error code, or NATS `ok` / error code / no-responders) → count. */
  outcomes: Record<string, number>;
  /** Refusals after which the snapshot of the services' data was compared (and found unchanged, unless a failure says so). */
  refusalsChecked: number;
}

export interface Failure {
  category: TallyKey;
  what: string;
  input: string;
  outcome: string;
}

export interface TargetResult {
  /** The service that serves the target. */
  service?: string;
  kind: 'http' | 'nats';
  target: string;
  categories: Partial<Record<TallyKey, Tally>>;
  failures: Failure[];
}

export interface FuzzResults {
  runs: number;
  seed: number;
  at: string;
  targets: TargetResult[];
  health: Record<string, number | string>;
}

const excerpt = (v: unknown): string => {
  const s = typeof v === 'string' ? v : v instanceof Uint8Array ? `bytes ${Buffer.from(v).toString('hex')}` : JSON.stringify(v);
  return s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s;
};
const bodyExcerpt = (b: WireBody | undefined) => (b === undefined ? '(none)' : 'json' in b ? excerpt(b.json) : `raw ${excerpt(b.raw)}`);

/** Values for path parameters of no declared schema, and junk for any. */
const anyParam = z.string().min(1);
const junkParam = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }), fc.constantFrom('..', '%', '%00', ' ', '😀', 'a/b', '?x=1', '#', 'x'.repeat(2000)));
const junkQuery = fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.jsonValue({ maxDepth: 1 })), { maxKeys: 4 });

function paramArbitrary(schema: z.ZodType | undefined, category: Category, seeds: Seeds): fc.Arbitrary<unknown> {
  const s = schema ?? anyParam;
  if (category === 'junk') return junkParam;
  return category === 'boundary' ? boundaryArbitrary(s, { seeds }) : validArbitrary(s, { seeds });
}

function queryArbitrary(schema: z.ZodType | undefined, category: Category, seeds: Seeds, hasBody: boolean): fc.Arbitrary<Record<string, unknown>> {
  if (category === 'junk') return junkQuery;
  // a route without a body gets a URL beyond Node's header limit instead (a route with one, an oversized body)
  if (category === 'oversized' && !hasBody) return fc.constant({ padding: 'q'.repeat(20_000) });
  if (!schema) return fc.constant({});
  const arb = category === 'boundary' ? boundaryArbitrary(schema, { seeds }) : category === 'mutated' ? mutatedArbitrary(schema, { seeds }) : validArbitrary(schema, { seeds });
  return arb.map((q) => (q && typeof q === 'object' && !Array.isArray(q) ? (q as Record<string, unknown>) : { value: q }));
}

/** A lone surrogate cannot be put in a URL (encodeURIComponent throws): it becomes U+FFFD, as a browser would send it. */
const wellFormed = (s: string) => s.replace(/\p{Cs}/gu, '\ufffd');

const queryString = (q: Record<string, unknown>) => {
  const entries = Object.entries(q).filter(([, v]) => v !== undefined);
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString()}` : '';
};

interface HttpInput {
  path: string;
  body?: WireBody;
}

/** Requests of one category for one route: path parameters, query and body drawn from the route's schemas. */
function httpInputs(t: HttpTarget, category: Category, n: number, seed: number, seeds: Seeds, bodyLimit: number): HttpInput[] {
  const params = fc.record(Object.fromEntries(Object.entries(t.params).map(([name, s]) => [name, paramArbitrary(s, category, seeds)])));
  const hasBody = t.method !== 'GET' && t.method !== 'DELETE';
  const body = hasBody ? inputArbitrary(category, t.body ?? z.object({}).strict(), { seeds, oversizeBytes: bodyLimit + 1024 }) : fc.constant(undefined);
  const arb = fc.record({ params, query: queryArbitrary(t.query, category === 'oversized' && hasBody ? 'valid' : category, seeds, hasBody), body });
  return samples(arb, n, seed).map(({ params: p, query, body: b }) => ({
    path: t.path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(wellFormed(String(p[name])))) + queryString(query),
    ...(b ? { body: b } : {}),
  }));
}

async function send(base: string, method: string, input: HttpInput, token: string | null): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${base}${input.path}`, {
    method,
    headers: { ...(input.body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: input.body ? Buffer.from(encodeBody(input.body)) : undefined,
  });
  // a live stream (Server-Sent Events) that was accepted never ends: its status and headers are the answer
  if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
    await res.body?.cancel();
    return { status: res.status };
  }
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string })?.code;
  } catch {
    // not JSON: the status says it
  }
  return { status: res.status, code };
}

const tallyOf = (r: TargetResult, key: TallyKey): Tally => (r.categories[key] ??= { sent: 0, outcomes: {}, refusalsChecked: 0 });
const count = (t: Tally, outcome: string) => {
  t.sent++;
  t.outcomes[outcome] = (t.outcomes[outcome] ?? 0) + 1;
};

export interface FuzzContext {
  stack: FuzzStack;
  seeds: Seeds;
  runs: number;
  seed: number;
  bodyLimitBytes: number;
}

/** Fuzzes one HTTP route of `base`: with an admin token (every category) and without a token. */
export async function fuzzHttpRoute(ctx: FuzzContext, base: string, t: HttpTarget): Promise<TargetResult> {
  const result: TargetResult = { kind: 'http', target: `${t.method} ${t.path}`, categories: {}, failures: [] };
  const admin = await defaultTestToken();
  let before = await ctx.stack.snapshot();
  const run = async (key: TallyKey, input: HttpInput, token: string | null) => {
    const tally = tallyOf(result, key);
    let outcome: string;
    let status = 0;
    try {
      const r = await send(base, t.method, input, token);
      status = r.status;
      outcome = `${r.status}${r.code ? ` ${r.code}` : ''}`;
    } catch (e) {
      outcome = `no answer: ${(e as Error).message}`;
    }
    count(tally, outcome);
    const fail = (what: string) => result.failures.push({ category: key, what, input: `${input.path} ${bodyExcerpt(input.body)}`, outcome });
    if (status === 0 || status >= 500) fail(status === 0 ? 'no answer' : 'a 5xx');
    if (key === 'no-token' && t.access !== 'public' && status < 400) fail('answered without a token');
    const after = await ctx.stack.snapshot();
    if (status >= 400 && status < 500) {
      tally.refusalsChecked++;
      if (after !== before) fail('wrote on a refusal');
    }
    before = after;
  };
  for (const [i, category] of CATEGORIES.entries()) {
    const n = category === 'oversized' ? Math.min(ctx.runs, 3) : ctx.runs;
    for (const input of httpInputs(t, category, n, ctx.seed + i, ctx.seeds, ctx.bodyLimitBytes)) await run(category, input, admin);
  }
  if (t.access !== 'public') {
    const n = Math.min(ctx.runs, 3);
    for (const category of ['valid', 'junk'] as const) for (const input of httpInputs(t, category, n, ctx.seed + 99, ctx.seeds, ctx.bodyLimitBytes)) await run('no-token', input, null);
  }
  return result;
}

/** Subject tokens that are not the ones a sender should use: other hosts, unicode, long, odd characters. */
const subjectToken = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/), fc.constantFrom('ü', '😀', 'x'.repeat(300), '$SYS', 'UPPER', '-', '_', '0'));

/**
 * Fuzzes one NATS subject: request bodies of every category on the subject's real parameters, and valid
 * bodies on fuzzed subject tokens. A request must be answered with an error code other than INTERNAL (or
 * not at all when no one serves that token); a fire-and-forget message must leave the receiver running,
 * and write nothing when it breaks its contract.
 */
export async function fuzzNatsSubject(ctx: FuzzContext, nc: NatsConnection, t: NatsTarget, ownParams: Record<string, string>): Promise<TargetResult> {
  const schema = schemaOfNatsTarget(t);
  const template = t.contract.subject;
  const result: TargetResult = { kind: 'nats', target: template, categories: {}, failures: [] };
  const names = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  // a parameter the body names too (inventory.host.{hostId}.register) takes the body's value, as a sender's would
  const paramsFor = (body: WireBody): Record<string, string> =>
    Object.fromEntries(
      names.map((name) => {
        const fromBody = 'json' in body && body.json && typeof body.json === 'object' ? (body.json as Record<string, unknown>)[name] : undefined;
        return [name, ownParams[name] ?? (typeof fromBody === 'string' && /^[A-Za-z0-9_-]+$/.test(fromBody) ? fromBody : FUZZ_HOST_ID)];
      }),
    );
  // built by hand, not with fillSubject: fuzzed tokens are exactly what fillSubject refuses
  const subjectOf = (params: Record<string, string>) => `${ctx.stack.nats.prefix}.${template.replace(/\{(\w+)\}/g, (_, n: string) => params[n])}`;
  let before = await ctx.stack.snapshot();
  const request = async (key: TallyKey, subject: string, body: WireBody) => {
    const tally = tallyOf(result, key);
    let outcome: string;
    let refused = false;
    try {
      const msg = await nc.request(subject, encodeBody(body), { timeout: 15_000 });
      const envelope = msg.json<{ ok: boolean; error?: { code: string } }>();
      outcome = envelope.ok ? 'ok' : (envelope.error?.code ?? 'malformed reply');
      refused = !envelope.ok;
    } catch (e) {
      const m = (e as Error).message;
      outcome = /no responders|503/i.test(m) ? 'no-responders' : /timeout/i.test(m) ? 'timeout' : `error: ${m}`;
      refused = outcome === 'no-responders';
    }
    count(tally, outcome);
    const fail = (what: string) => result.failures.push({ category: key, what, input: `${subject} ${bodyExcerpt(body)}`, outcome });
    if (outcome === 'INTERNAL' || outcome === 'malformed reply') fail('an INTERNAL error reply');
    if (outcome === 'timeout' || outcome.startsWith('error:')) fail('no reply');
    const after = await ctx.stack.snapshot();
    if (refused) {
      tally.refusalsChecked++;
      if (after !== before) fail('wrote on a refusal');
    }
    before = after;
  };
  if (t.contract.kind === 'request') {
    for (const [i, category] of CATEGORIES.entries()) {
      const n = category === 'oversized' ? Math.min(ctx.runs, 2) : ctx.runs;
      const bodies = samples(inputArbitrary(category, schema, { seeds: ctx.seeds, oversizeBytes: maxPayload - 64 * 1024 }), n, ctx.seed + i);
      for (const body of bodies) await request(category, subjectOf(paramsFor(body)), body);
    }
    if (names.length) {
      const arb = fc.record({ body: inputArbitrary('valid', schema, { seeds: ctx.seeds, oversizeBytes: 0 }), tokens: fc.array(subjectToken, { minLength: names.length, maxLength: names.length }) });
      for (const { body, tokens } of samples(arb, ctx.runs, ctx.seed + 50)) {
        await request('subject-token', subjectOf(Object.fromEntries(names.map((n, i) => [n, tokens[i]]))), body);
      }
    }
    return result;
  }
  // messages: those that break the contract in one batch (nothing may be written), then the valid ones
  const bodies = CATEGORIES.flatMap((category, i) =>
    samples(inputArbitrary(category, schema, { seeds: ctx.seeds, oversizeBytes: maxPayload - 64 * 1024 }), category === 'oversized' ? 2 : ctx.runs, ctx.seed + i).map((body) => ({ category, body })),
  );
  const contractOk = (b: WireBody) => 'json' in b && schema.safeParse(b.json).success;
  const publish = async (batch: typeof bodies) => {
    for (const { category, body } of batch) {
      nc.publish(subjectOf(paramsFor(body)), encodeBody(body));
      count(tallyOf(result, category), contractOk(body) ? 'published (valid)' : 'published (breaks the contract)');
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, 300)); // let the receiver handle them (they carry no reply to wait for)
  };
  before = await ctx.stack.snapshot();
  const broken = bodies.filter((b) => !contractOk(b.body));
  await publish(broken);
  for (const { category } of broken) tallyOf(result, category).refusalsChecked++;
  if ((await ctx.stack.snapshot()) !== before) result.failures.push({ category: 'junk', what: 'wrote on a refusal', input: `${broken.length} messages that break the contract`, outcome: 'the snapshot changed' });
  await publish(bodies.filter((b) => contractOk(b.body)));
  return result;
}

export async function connectObserver(stack: FuzzStack): Promise<NatsConnection> {
  return connect({ servers: stack.nats.url, ...stack.nats.observer() });
}

/** Ids that exist in the stack (the agent's host, its cluster, a VM), mixed into generated values so that valid requests reach past "not found". */
export function seedsOf(ids: { hostIds: string[]; uuids: string[] }): Seeds {
  return new Map<z.ZodType, unknown[]>([
    [HostIdSchema, ids.hostIds],
    [UuidSchema, ids.uuids],
  ]);
}

/** Writes the results where the fault-matrix document reads them (FUZZ_RESULTS_DIR, default dist/fuzz). */
export function writeResults(results: FuzzResults): string {
  const dir = process.env.FUZZ_RESULTS_DIR ?? path.join(repoRoot, 'dist', 'fuzz');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'results.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

/** A table of the counts: one row per target and category, with outcomes. */
export function summaryTable(results: FuzzResults): string {
  const rows = results.targets.flatMap((t) =>
    Object.entries(t.categories).map(([category, tally]) => [
      t.service ?? '',
      t.kind,
      t.target,
      category,
      String(tally!.sent),
      String(tally!.refusalsChecked),
      Object.entries(tally!.outcomes)
        .sort((a, b) => b[1] - a[1])
        .map(([o, n]) => `${o}×${n}`)
        .join(', '),
    ]),
  );
  const header = ['service', 'kind', 'target', 'category', 'sent', 'refusals checked', 'outcomes'];
  const widths = header.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[i].length))));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join(' | ');
  const failures = results.targets.reduce((n, t) => n + t.failures.length, 0);
  return [`fuzz: FUZZ_RUNS=${results.runs} FUZZ_SEED=${results.seed}, ${failures} failure(s)`, line(header), ...rows.map(line)].join('\n');
}
