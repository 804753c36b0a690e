import {
  CheckVmCpu,
  CheckVmMemory,
  OpenLinkSink,
  ProbeLink,
  SampleDirtyRate,
  CompensateStep,
  FenceMigration,
  EVENTS_STREAM_SUFFIX,
  eventsSubjectRoot,
  GetHost,
  GetReservation,
  GetStepAttempt,
  GetVm,
  HostHeartbeat,
  ListAgentVms,
  ListHosts,
  ListPlacementHosts,
  ListVms,
  MigrationProgressMessage,
  PauseVm,
  QueryMigration,
  QueryStreamEnd,
  RegisterHost,
  ReleaseCapacity,
  RelocateVm,
  ReserveCapacity,
  ReservationNotice,
  RunStep,
  SetHostMaintenance,
  StartVm,
} from '@flexmig/contracts';

/**
 * Who may publish and subscribe to what, per identity (DESIGN.md, Trust). Pure: the tables are built for
 * one deployment's subject prefix and read by the issuer (issue.ts), the tests and docs/security.md.
 *
 * Every identity reads replies on an inbox prefix of its own (`_INBOX.<name>`, set as the connection's
 * `inboxPrefix`), and nobody may read `_INBOX.>` or another's inbox. (Not `_INBOX_<name>`: nats-server
 * 2.9 fills a `{{name()}}` template only where it is a whole subject token.) Services that answer requests get
 * `resp` (allow_responses): they may publish one reply to the reply subject of a request they received,
 * and nothing else on inbox subjects.
 */

/**
 * The identities `flexmig auth init` issues besides the agents' (one per host, see agentTemplate): the
 * services', an event consumer's (`subscriber`), and an operator's checks of a guest after its migration
 * (`verifier`: the qemu demo's memory check, which no service sends).
 */
export const serviceRoles = ['inventory', 'scheduler', 'cpu-compat', 'subscriber', 'console', 'verifier'] as const;
export type ServiceRole = (typeof serviceRoles)[number];
/** The sim fleet (many simulated hosts in one process): an identity that covers every agent. Never issued by init. */
export const fleetRole = 'fleet';
export type Role = ServiceRole | typeof fleetRole;

/** The `{{name()}}` template of a scoped signing key: the server puts the user JWT's name (the host id) there. */
export const nameTemplate = '{{name()}}';

/**
 * The durable the subscriber identity may create and read on the events stream. A consumer name is one
 * token, so a per-identity prefix cannot be expressed; one fixed name per subscriber identity can.
 */
export const subscriberDurable = 'subscriber';

/**
 * The prefix of the console's consumer names (`console_<id>_<n>`): ordered consumers, one per live stream,
 * ephemeral (in memory, no acks, deleted when the stream ends or idle). A name is one token, so the
 * permissions cannot confine the console to this prefix; it may create any consumer on the events stream.
 */
export const consoleConsumerPrefix = 'console';

export interface SubjectPermissions {
  pub: { allow: string[] };
  sub: { allow: string[] };
  /** allow_responses: may answer (once, within the request's lifetime) the requests it receives. */
  resp?: { max: number };
}

/** `_INBOX.<name>`: the inbox prefix of an identity (the agents': `_INBOX.<hostId>`). */
export const inboxPrefixFor = (name: string): string => `_INBOX.${name}`;

/** Host ids an agent identity may not have: its inbox would be a service's. */
export const reservedIdentityNames: readonly string[] = [...serviceRoles, 'fleet'];

/** The events stream's name for a prefix (as NatsBus.eventsStream computes it). */
export const eventsStreamName = (prefix: string): string => `${prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_${EVENTS_STREAM_SUFFIX}`;

/**
 * Which service publishes which events: the event type's first token names its family, and each family
 * has exactly one owner (permissions.spec.ts checks every defined event type against this).
 */
export const eventFamilyOwners: Readonly<Record<string, ServiceRole>> = {
  migration: 'scheduler',
  host: 'inventory',
  cluster: 'inventory',
  vm: 'inventory',
};

/** Fills a contract's `{param}` placeholders with NATS tokens, wildcards or the name template. */
function subject(prefix: string, template: string, params: Record<string, string> = {}): string {
  return `${prefix}.${template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`subject ${template} needs ${name}`);
    return v;
  })}`;
}

const onEveryHost = { hostId: '*' };
const jsApi = (s: string) => `$JS.API.${s}`;

/** What a service needs of JetStream to make sure the events stream exists and publish to it. */
const streamKeeper = (stream: string) => [jsApi('INFO'), jsApi(`STREAM.INFO.${stream}`), jsApi(`STREAM.CREATE.${stream}`)];

const eventsOf = (prefix: string, owner: ServiceRole) =>
  Object.entries(eventFamilyOwners)
    .filter(([, o]) => o === owner)
    .map(([family]) => `${prefix}.${eventsSubjectRoot}.${family}.>`);

/** The agent's subjects with `host` for its id: `{{name()}}` in the scoped key's template, `*` for the fleet. */
function agentSubjects(prefix: string, host: string, inbox: string): SubjectPermissions {
  return {
    sub: { allow: [`${prefix}.agent.${host}.>`, `${inbox}.>`] },
    pub: {
      allow: [
        subject(prefix, RegisterHost.subject, { hostId: host }),
        subject(prefix, HostHeartbeat.subject, { hostId: host }),
        subject(prefix, MigrationProgressMessage.subject, { migrationId: '*', hostId: host }),
        // Reads of another agent, the only agent subjects an agent may send to besides its own replies: a
        // source asks the target's agent whether it still holds the incoming VM; a target asks the source's how
        // its stream ended, before it starts the guest (both answer from what they know, and change nothing).
        subject(prefix, QueryMigration.subject, onEveryHost),
        subject(prefix, QueryStreamEnd.subject, onEveryHost),
        // Reads an agent makes before it acts on a migration (docs/security.md, "Agents and inventory"): the
        // reservation that admits it (with the target host's registered address), the attempt the scheduler
        // issued. No host view: an agent learns nothing of the fleet beyond the migrations it takes part in.
        subject(prefix, GetReservation.subject),
        subject(prefix, GetStepAttempt.subject),
      ],
    },
    resp: { max: 1 },
  };
}

/** The template of the account's scoped signing key for agents: `{{name()}}` becomes the user's name, the host id. */
export function agentTemplate(prefix: string): SubjectPermissions {
  return agentSubjects(prefix, nameTemplate, inboxPrefixFor(nameTemplate));
}

/** What one agent may do, as the server computes it from the template (for tests and documentation). */
export function agentPermissions(prefix: string, hostId: string): SubjectPermissions {
  return agentSubjects(prefix, hostId, inboxPrefixFor(hostId));
}

/** The permissions of a service identity for one deployment prefix. */
export function rolePermissions(role: Role, prefix: string): SubjectPermissions {
  const stream = eventsStreamName(prefix);
  const inbox = `${inboxPrefixFor(role)}.>`;
  switch (role) {
    case 'inventory':
      return {
        sub: { allow: [`${prefix}.inventory.>`, inbox] },
        pub: {
          allow: [
            `${prefix}.cpu.>`, // cpu-compat: evaluate hosts, verdicts, modes
            subject(prefix, StartVm.subject, onEveryHost), // POST /vms starts the VM on its host
            // reconciliation: a host's VM list when its report is stale, and the fence of a split brain's other copy
            subject(prefix, ListAgentVms.subject, onEveryHost),
            subject(prefix, PauseVm.subject, onEveryHost),
            // POST /vms/:id/cpu-check asks the VM's agent what its guest sees
            subject(prefix, CheckVmCpu.subject, onEveryHost),
            // step 1's reservation (or its release) told to the migration's two agents: what their entry steps check
            subject(prefix, ReservationNotice.subject, onEveryHost),
            ...eventsOf(prefix, 'inventory'),
            ...streamKeeper(stream),
          ],
        },
        resp: { max: 1 },
      };
    case 'scheduler':
      return {
        // it answers agents asking which attempt of a step it issued (GetStepAttempt)
        sub: { allow: [inbox, subject(prefix, MigrationProgressMessage.subject, { migrationId: '*', hostId: '*' }), subject(prefix, GetStepAttempt.subject)] },
        pub: {
          allow: [
            // a step's command, its compensation, its outcome asked and its fence; a host's VMs (resolving an outcome)
            ...[RunStep, CompensateStep, QueryMigration, FenceMigration, ListAgentVms].map((c) => subject(prefix, c.subject, onEveryHost)),
            // POST /migrations/predict: the VM's dirty rate from its agent, the link from the source's probe into the target's sink (docs/prediction.md)
            ...[SampleDirtyRate, OpenLinkSink, ProbeLink].map((c) => subject(prefix, c.subject, onEveryHost)),
            // of inventory: hosts by id and through placement's list (no list of every host's view), VMs by id and an
            // evacuated host's list, step 1's reservation and its release, step 9's move, an evacuation's maintenance
            ...[GetHost, ListPlacementHosts, GetVm, ListVms, ReserveCapacity, ReleaseCapacity, RelocateVm, SetHostMaintenance].map((c) => subject(prefix, c.subject)),
            `${prefix}.cpu.>`,
            ...eventsOf(prefix, 'scheduler'),
            ...streamKeeper(stream),
          ],
        },
        resp: { max: 1 },
      };
    case 'cpu-compat':
      return {
        sub: { allow: [`${prefix}.cpu.>`, inbox] },
        // masks and cluster plans look hosts up in inventory; it publishes no events
        pub: { allow: [subject(prefix, GetHost.subject), subject(prefix, ListHosts.subject)] },
        resp: { max: 1 },
      };
    case 'subscriber': {
      const durable = `${stream}.${subscriberDurable}`;
      return {
        sub: { allow: [`${prefix}.${eventsSubjectRoot}.>`, subject(prefix, MigrationProgressMessage.subject, { migrationId: '*', hostId: '*' }), inbox] },
        pub: {
          allow: [
            jsApi('INFO'),
            jsApi(`STREAM.INFO.${stream}`),
            // its own durable only: create (with or without a filter subject), look at, pull from, delete
            jsApi(`CONSUMER.CREATE.${durable}`),
            jsApi(`CONSUMER.CREATE.${durable}.>`),
            jsApi(`CONSUMER.DURABLE.CREATE.${durable}`),
            jsApi(`CONSUMER.INFO.${durable}`),
            jsApi(`CONSUMER.MSG.NEXT.${durable}`),
            jsApi(`CONSUMER.DELETE.${durable}`),
            `$JS.ACK.${durable}.>`,
          ],
        },
      };
    }
    case 'console': {
      // the console's live streams (SSE): events replayed from a sequence with ordered consumers, progress
      // on core NATS. It reads; it publishes no event and sends no request, and it answers none.
      const consumer = (api: string) => [jsApi(`CONSUMER.${api}.${stream}.*`)];
      return {
        sub: { allow: [subject(prefix, MigrationProgressMessage.subject, { migrationId: '*', hostId: '*' }), inbox] },
        pub: {
          allow: [
            jsApi('INFO'),
            jsApi(`STREAM.INFO.${stream}`),
            ...consumer('CREATE'),
            jsApi(`CONSUMER.CREATE.${stream}.*.>`), // with a filter subject
            ...consumer('INFO'),
            ...consumer('MSG.NEXT'),
            ...consumer('DELETE'),
          ],
        },
      };
    }
    case 'verifier':
      // an operator's check of a guest after its migration (the qemu demo): its memory compared page by page
      // (the agent pauses the guest meanwhile), the VMs a host runs, the migration's progress. It reads; it
      // starts, moves and stops nothing, asks inventory and the scheduler nothing, and answers nothing.
      return {
        sub: { allow: [subject(prefix, MigrationProgressMessage.subject, { migrationId: '*', hostId: '*' }), inbox] },
        pub: { allow: [CheckVmMemory, ListAgentVms].map((c) => subject(prefix, c.subject, onEveryHost)) },
      };
    case 'fleet':
      // every agent subject of the deployment: for the sim fleet, which runs many hosts in one process
      return agentSubjects(prefix, '*', inboxPrefixFor(fleetRole));
    default: {
      const never: never = role;
      throw new Error(`unknown role ${String(never)}`);
    }
  }
}
