import { z } from 'zod';

/**
 * A NATS subject is written relative to the deployment's prefix (`flexmig` by default, one per test
 * suite), and may name parameters in braces: `agent.{hostId}.vm.start`. The bus fills them in.
 */
export type SubjectTemplate = string;

export interface RequestContract<Req extends z.ZodType = z.ZodType, Rep extends z.ZodType = z.ZodType> {
  readonly kind: 'request';
  readonly subject: SubjectTemplate;
  readonly description: string;
  readonly request: Req;
  readonly reply: Rep;
}

export interface MessageContract<Msg extends z.ZodType = z.ZodType> {
  readonly kind: 'message';
  readonly subject: SubjectTemplate;
  readonly description: string;
  readonly message: Msg;
}

export interface EventContract<Data extends z.ZodType = z.ZodType> {
  readonly kind: 'event';
  /** CloudEvents `type`, also the subject suffix under `<prefix>.events.` */
  readonly type: string;
  readonly description: string;
  readonly data: Data;
}

export type RequestOf<C> = C extends RequestContract<infer Req, z.ZodType> ? z.infer<Req> : never;
export type ReplyOf<C> = C extends RequestContract<z.ZodType, infer Rep> ? z.infer<Rep> : never;
export type MessageOf<C> = C extends MessageContract<infer M> ? z.infer<M> : never;
export type EventDataOf<C> = C extends EventContract<infer D> ? z.infer<D> : never;

const registry = new Map<string, RequestContract | MessageContract>();
const eventRegistry = new Map<string, EventContract>();

export function defineRequest<Req extends z.ZodType, Rep extends z.ZodType>(
  c: Omit<RequestContract<Req, Rep>, 'kind'>,
): RequestContract<Req, Rep> {
  const contract = { kind: 'request' as const, ...c };
  register(contract);
  return contract;
}

export function defineMessage<Msg extends z.ZodType>(c: Omit<MessageContract<Msg>, 'kind'>): MessageContract<Msg> {
  const contract = { kind: 'message' as const, ...c };
  register(contract);
  return contract;
}

export function defineEvent<Data extends z.ZodType>(c: Omit<EventContract<Data>, 'kind'>): EventContract<Data> {
  if (eventRegistry.has(c.type)) throw new Error(`event type ${c.type} is defined twice`);
  const contract = { kind: 'event' as const, ...c };
  eventRegistry.set(c.type, contract);
  return contract;
}

function register(c: RequestContract | MessageContract): void {
  if (registry.has(c.subject)) throw new Error(`subject ${c.subject} is defined twice`);
  registry.set(c.subject, c);
}

/** Looks a contract up by its subject template (used by the Nest transport to validate handlers). */
export function contractForSubject(subject: SubjectTemplate): RequestContract | MessageContract | undefined {
  return registry.get(subject);
}

export function allContracts(): ReadonlyArray<RequestContract | MessageContract> {
  return [...registry.values()];
}

export function allEventContracts(): ReadonlyArray<EventContract> {
  return [...eventRegistry.values()];
}

export function eventContract(type: string): EventContract | undefined {
  return eventRegistry.get(type);
}

/**
 * Why an event stored to be published later (an outbox row) can never be: its type unknown, or its data
 * outside its contract (each field and what is wrong with it); undefined when it can.
 */
export function eventRefusal(type: string, data: unknown): string | undefined {
  const contract = eventRegistry.get(type);
  if (!contract) return `unknown event type ${type}`;
  const checked = contract.data.safeParse(data);
  return checked.success ? undefined : checked.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ');
}

/** Fills `{param}` placeholders; every value must be a single NATS token, or `*` (to subscribe to every value). */
export function fillSubject(template: SubjectTemplate, params: Record<string, string> = {}): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`subject ${template} needs parameter ${name}`);
    if (value !== '*' && !/^[A-Za-z0-9_-]+$/.test(value)) throw new Error(`subject parameter ${name}=${value} is not a NATS token`);
    return value;
  });
}

/**
 * The parameters of a subject a message arrived on (`<prefix>.` followed by the template filled in), or
 * undefined when it does not fit the template: what a handler checks the body against (the subject is
 * what NATS permissions vouch for, the body is not).
 */
export function subjectParams(template: SubjectTemplate, subject: string): Record<string, string> | undefined {
  const want = templateTokens(template);
  const got = subject.split('.').slice(1); // the deployment's prefix is one token
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (w.param) params[w.param] = got[i]!;
    else if (w.literal !== got[i]) return undefined;
  }
  return params;
}

/** A template's tokens, parsed once: every heartbeat of a fleet checks its subject against one template. */
const parsedTemplates = new Map<string, { literal: string; param?: string }[]>();
function templateTokens(template: string): { literal: string; param?: string }[] {
  let tokens = parsedTemplates.get(template);
  if (!tokens) {
    tokens = template.split('.').map((literal) => {
      const param = /^\{(\w+)\}$/.exec(literal)?.[1];
      return param ? { literal, param } : { literal };
    });
    parsedTemplates.set(template, tokens);
  }
  return tokens;
}
