import { allContracts, allEventContracts, fillSubject } from '@flexmig/contracts';
import {
  agentPermissions,
  agentTemplate,
  eventFamilyOwners,
  eventsStreamName,
  fleetRole,
  nameTemplate,
  rolePermissions,
  serviceRoles,
  subscriberDurable,
  consoleConsumerPrefix,
  type SubjectPermissions,
} from './permissions';

/** Does the permission `pattern` cover `subject` (which may itself hold wildcards, as a subscription does)? NATS's rules. */
function covers(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] === '*') {
      if (s[i] === '>') return false;
      continue;
    }
    if (p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
const mayPub = (perms: SubjectPermissions, subject: string) => perms.pub.allow.some((p) => covers(p, subject));
const maySub = (perms: SubjectPermissions, subject: string) => perms.sub.allow.some((p) => covers(p, subject));

const prefix = 'flexmig';
const identities: Record<string, SubjectPermissions> = {
  ...Object.fromEntries(serviceRoles.map((r) => [r, rolePermissions(r, prefix)])),
  'host-a': agentPermissions(prefix, 'host-a'),
  'host-c': agentPermissions(prefix, 'host-c'),
};
const others = (name: string) => Object.entries(identities).filter(([n]) => n !== name);

describe('the covers() helper the tables are checked with', () => {
  it.each([
    ['a.*.c', 'a.b.c', true],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a', false],
    ['a.*', 'a.>', false],
    ['a.b', 'a.*', false],
  ])('%s covers %s: %s', (p, s, want) => expect(covers(p, s)).toBe(want));
});

describe('agent permissions (the scoped signing key\'s template)', () => {
  it('given the template, when the server puts a host id for {{name()}}, then it is exactly that host\'s permissions', () => {
    const filled = JSON.parse(JSON.stringify(agentTemplate(prefix)).replaceAll(nameTemplate, 'host-a'));
    expect(filled).toEqual(agentPermissions(prefix, 'host-a'));
  });

  it("given host-a, then it listens only on its own subjects and its own inbox", () => {
    const a = identities['host-a'];
    expect(a.sub.allow.sort()).toEqual(['_INBOX.host-a.>', 'flexmig.agent.host-a.>']);
    expect(maySub(a, 'flexmig.agent.host-c.>')).toBe(false);
    expect(maySub(a, 'flexmig.agent.*.migration.step')).toBe(false);
    expect(maySub(a, '_INBOX.>')).toBe(false);
  });

  it("given host-a, then it publishes its own registration, heartbeat and progress, and nobody else's", () => {
    const a = identities['host-a'];
    expect(mayPub(a, 'flexmig.inventory.host.host-a.register')).toBe(true);
    expect(mayPub(a, 'flexmig.inventory.host.host-a.heartbeat')).toBe(true);
    expect(mayPub(a, 'flexmig.progress.migration.m1.host-a')).toBe(true);
    expect(mayPub(a, 'flexmig.inventory.host.host-c.register')).toBe(false);
    expect(mayPub(a, 'flexmig.inventory.host.host-c.heartbeat')).toBe(false);
    expect(mayPub(a, 'flexmig.progress.migration.m1.host-c')).toBe(false);
    expect(mayPub(a, 'flexmig.agent.host-c.migration.step')).toBe(false);
    expect(mayPub(a, 'flexmig.inventory.vm.relocate')).toBe(false);
    expect(a.resp).toEqual({ max: 1 });
  });

  it('given host-a, then of inventory it may read only a migration\'s reservation: no host or VM view, no list', () => {
    const a = identities['host-a'];
    expect(mayPub(a, 'flexmig.inventory.reservation.get')).toBe(true);
    for (const read of ['host.get', 'host.list', 'host.placement-list', 'vm.get', 'vm.list'])
      expect([read, mayPub(a, `flexmig.inventory.${read}`)]).toEqual([read, false]);
  });

  it('given the fleet, then it covers every host but reads only its own inbox', () => {
    const f = rolePermissions(fleetRole, prefix);
    expect(maySub(f, 'flexmig.agent.sim-001.>')).toBe(true);
    expect(maySub(f, '_INBOX.fleet.>')).toBe(true);
    expect(maySub(f, '_INBOX.>')).toBe(false);
    expect(mayPub(f, 'flexmig.events.migration.completed')).toBe(false);
  });
});

describe('inboxes', () => {
  it.each(Object.keys(identities))('given %s, then it reads its own inbox and no one else\'s', (name) => {
    expect(maySub(identities[name], `_INBOX.${name}.>`)).toBe(true);
    expect(maySub(identities[name], '_INBOX.>')).toBe(false);
    for (const [other] of others(name)) expect(maySub(identities[name], `_INBOX.${other}.abc.1`)).toBe(false);
  });

  it('given any identity, then it may not publish into an inbox (replies go only through its response permission)', () => {
    for (const [name, perms] of Object.entries(identities)) expect([name, mayPub(perms, '_INBOX.scheduler.abc.1')]).toEqual([name, false]);
  });
});

describe('events: only the service that owns an event may publish it', () => {
  const types = allEventContracts().map((c) => c.type);

  it('given every event type defined in the contracts, then its family has exactly one owner', () => {
    for (const type of types) expect([type, eventFamilyOwners[type.split('.')[0]]]).toEqual([type, expect.any(String)]);
  });

  it.each(types)('given %s, then its owner may publish it and nobody else', (type) => {
    const owner = eventFamilyOwners[type.split('.')[0]];
    const subject = `${prefix}.events.${type}`;
    expect(mayPub(identities[owner], subject)).toBe(true);
    for (const [name, perms] of others(owner)) expect([name, mayPub(perms, subject)]).toEqual([name, false]);
  });
});

describe('requests', () => {
  it('given inventory.host.list (every host of a cluster, its CPU features with it), then only cpu-compat may ask it, for its masks and plans', () => {
    const subject = `${prefix}.inventory.host.list`;
    expect(mayPub(identities['cpu-compat'], subject)).toBe(true);
    for (const [name, perms] of others('cpu-compat')) expect([name, mayPub(perms, subject)]).toEqual([name, false]);
  });

  it.each(['inventory.vm.relocate', 'inventory.reservation.create', 'inventory.reservation.release', 'inventory.host.set-maintenance'])(
    'given %s (the saga\'s and evacuation\'s), then only the scheduler may send it',
    (s) => {
      const subject = `${prefix}.${s}`;
      expect(mayPub(identities.scheduler, subject)).toBe(true);
      for (const [name, perms] of others('scheduler')) expect([name, mayPub(perms, subject)]).toEqual([name, false]);
    },
  );

  it('given a step command to any host, then the scheduler may send it and no agent or other service may', () => {
    const subject = `${prefix}.agent.host-c.migration.step`;
    expect(mayPub(identities.scheduler, subject)).toBe(true);
    for (const [name, perms] of others('scheduler')) expect([name, mayPub(perms, subject)]).toEqual([name, false]);
  });

  it("given the reads of another agent (migration query, stream end), then every agent may ask any host, and only that host listens", () => {
    for (const subject of [`${prefix}.agent.host-c.migration.query`, `${prefix}.agent.host-c.migration.stream-end`]) {
      expect(mayPub(identities['host-a'], subject)).toBe(true);
      expect(maySub(identities['host-c'], subject)).toBe(true);
      expect(maySub(identities['host-a'], subject)).toBe(false);
    }
    // and nothing else of another host's: the step commands, compensations and fences stay the scheduler's
    for (const verb of ['step', 'compensate', 'fence']) expect(mayPub(identities['host-a'], `${prefix}.agent.host-c.migration.${verb}`)).toBe(false);
  });

  it('given a CPU check of a VM on any host, then inventory may ask it and no agent may ask another host', () => {
    const subject = `${prefix}.agent.host-c.vm.cpu-check`;
    expect(mayPub(identities.inventory, subject)).toBe(true);
    expect(mayPub(identities['host-a'], subject)).toBe(false);
    expect(maySub(identities['host-c'], subject)).toBe(true);
    expect(maySub(identities['host-a'], subject)).toBe(false);
  });

  it('given a dirty-rate sample, a link sink or a link probe on any host, then the scheduler may ask it and no agent may ask another host', () => {
    for (const subject of [`${prefix}.agent.host-c.vm.dirty-rate`, `${prefix}.agent.host-c.link.sink`, `${prefix}.agent.host-c.link.probe`]) {
      expect(mayPub(identities.scheduler, subject)).toBe(true);
      expect(mayPub(identities.inventory, subject)).toBe(false);
      expect(mayPub(identities['host-a'], subject)).toBe(false);
      expect(maySub(identities['host-c'], subject)).toBe(true);
      expect(maySub(identities['host-a'], subject)).toBe(false);
    }
  });

  it("given a guest's memory check on any host (the agent pauses the guest meanwhile), then only the verifier may ask it, no service and no agent", () => {
    const subject = `${prefix}.agent.host-c.vm.check-memory`;
    expect(Object.entries(identities).filter(([, p]) => mayPub(p, subject)).map(([name]) => name)).toEqual(['verifier']);
    expect(maySub(identities['host-c'], subject)).toBe(true);
  });

  it("given a reservation's notice to an agent (what its entry step checks), then only inventory may send it, and only that host's agent hears it", () => {
    const subject = `${prefix}.agent.host-c.reservation.notice`;
    expect(Object.entries(identities).filter(([, p]) => mayPub(p, subject)).map(([name]) => name)).toEqual(['inventory']);
    expect(maySub(identities['host-c'], subject)).toBe(true);
    expect(maySub(identities['host-a'], subject)).toBe(false);
  });

  it('given every request contract, then some identity may send it and the one serving it may listen and answer', () => {
    const servers: Record<string, string> = { agent: 'host-c', inventory: 'inventory', cpu: 'cpu-compat', scheduler: 'scheduler' };
    for (const c of allContracts()) {
      const subject = `${prefix}.${fillSubject(c.subject, { hostId: 'host-c', migrationId: 'm1' })}`;
      if (c.kind === 'message') continue;
      const server = identities[servers[c.subject.split('.')[0]]];
      expect([c.subject, maySub(server, subject), server.resp?.max]).toEqual([c.subject, true, 1]);
      expect([c.subject, Object.values(identities).some((p) => mayPub(p, subject))]).toEqual([c.subject, true]);
    }
  });
});

describe('the subscriber (read-only event consumers)', () => {
  const s = identities.subscriber;
  const stream = eventsStreamName(prefix);

  it('given the subscriber, then it reads every event and its own durable, and publishes nothing else', () => {
    expect(maySub(s, `${prefix}.events.>`)).toBe(true);
    expect(mayPub(s, `$JS.API.CONSUMER.CREATE.${stream}.${subscriberDurable}.${prefix}.events.>`)).toBe(true);
    expect(mayPub(s, `$JS.API.CONSUMER.MSG.NEXT.${stream}.${subscriberDurable}`)).toBe(true);
    expect(mayPub(s, `$JS.API.CONSUMER.CREATE.${stream}.someone-else`)).toBe(false);
    expect(mayPub(s, `$JS.API.STREAM.DELETE.${stream}`)).toBe(false);
    expect(mayPub(s, `$JS.API.STREAM.PURGE.${stream}`)).toBe(false);
    expect(s.pub.allow.filter((p) => !p.startsWith('$JS.'))).toEqual([]);
    expect(s.resp).toBeUndefined();
  });
});

describe('the console (live streams over HTTP)', () => {
  const c = identities.console;
  const stream = eventsStreamName(prefix);
  const consumer = `${consoleConsumerPrefix}_abc_1`;

  it('given the console, then it replays events through consumers of its own making and hears progress', () => {
    expect(mayPub(c, `$JS.API.STREAM.INFO.${stream}`)).toBe(true);
    expect(mayPub(c, `$JS.API.CONSUMER.CREATE.${stream}.${consumer}.${prefix}.events.>`)).toBe(true);
    expect(mayPub(c, `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`)).toBe(true);
    expect(mayPub(c, `$JS.API.CONSUMER.DELETE.${stream}.${consumer}`)).toBe(true);
    expect(maySub(c, `${prefix}.progress.migration.m1.host-a`)).toBe(true);
  });

  it('given the console, then it changes no stream, acknowledges nothing, sends no request and answers none', () => {
    for (const api of ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.UPDATE', 'STREAM.CREATE']) expect([api, mayPub(c, `$JS.API.${api}.${stream}`)]).toEqual([api, false]);
    expect(mayPub(c, `$JS.API.CONSUMER.CREATE.OTHER_STREAM.${consumer}`)).toBe(false);
    expect(mayPub(c, `$JS.ACK.${stream}.${consumer}.1.1.1.1.0`)).toBe(false);
    expect(c.pub.allow.filter((p) => !p.startsWith('$JS.API.'))).toEqual([]);
    expect(maySub(c, `${prefix}.events.>`)).toBe(false);
    expect(maySub(c, `${prefix}.inventory.>`)).toBe(false);
    expect(c.resp).toBeUndefined();
  });
});

describe("the verifier (an operator's checks of a guest after its migration)", () => {
  const v = identities.verifier;

  it("given the verifier, then it may ask any host for a guest's memory check and its VMs, and hear a migration's progress", () => {
    for (const subject of [`${prefix}.agent.host-c.vm.check-memory`, `${prefix}.agent.host-a.vm.list`]) expect([subject, mayPub(v, subject)]).toEqual([subject, true]);
    expect(maySub(v, `${prefix}.progress.migration.m1.host-a`)).toBe(true);
    expect(maySub(v, '_INBOX.verifier.abc')).toBe(true);
  });

  it('given the verifier, then it starts, moves, pauses and stops nothing, asks no service, reads no event and answers nothing', () => {
    const refused = [
      ...['migration.step', 'migration.compensate', 'migration.fence', 'vm.start', 'vm.pause', 'vm.dirty-rate', 'vm.cpu-check', 'link.probe'].map((s) => `${prefix}.agent.host-c.${s}`),
      `${prefix}.inventory.vm.relocate`,
      `${prefix}.inventory.host.get`,
      `${prefix}.cpu.mode.verify`,
      `${prefix}.scheduler.migration.step-attempt`,
      `${prefix}.events.migration.completed`,
      '$JS.API.INFO',
    ];
    for (const subject of refused) expect([subject, mayPub(v, subject)]).toEqual([subject, false]);
    expect(maySub(v, `${prefix}.events.>`)).toBe(false);
    expect(maySub(v, `${prefix}.agent.host-c.>`)).toBe(false);
    expect(v.resp).toBeUndefined();
  });
});
