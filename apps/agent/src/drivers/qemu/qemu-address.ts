/**
 * Where a migration stream goes. The target listens on `tcp:<listenHost>:0` (the kernel picks a free
 * port, so two migrations never collide), reads the real port back and returns it from step 2
 * (StepReply.incomingAddress); the scheduler hands it to the source's commands. With a fixed
 * QEMU_MIGRATION_PORT_RANGE (firewalls) the target tries portRange.start + FNV-1a(migration id) mod the
 * range size first, then the range's next ports while they are in use, and returns the one it listens
 * on the same way; a source whose command lacks the reply streams to the first.
 */
import { ErrorCode, FlexmigError, StepCommand } from '@flexmig/contracts';
import { addressHost } from '../../address';

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The first incoming port of a migration in a fixed range: both agents compute the same one. */
export function migrationPort(migrationId: string, [lo, hi]: [number, number]): number {
  return lo + (fnv1a(migrationId) % (hi - lo + 1));
}

/** `host:port`, an IPv6 host in brackets (the form of StepReply.incomingAddress). */
export const hostPort = (host: string, port: number | string) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** QEMU's migration URI for a TCP stream. */
export const tcpUri = (host: string, port: number | string) => `tcp:${hostPort(host, port)}`;

/** A TCP endpoint: the host as QEMU and a TLS certificate check read it (no brackets), and the port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** The endpoint of an address `host:port` (`[v6]:port`) another agent answered; VALIDATION_FAILED without a port. */
export function addressEndpoint(address: string, what: string): Endpoint {
  const port = address.slice(address.lastIndexOf(':') + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new FlexmigError(ErrorCode.ValidationFailed, `${what} ${JSON.stringify(address)} is not host:port`);
  return { host: addressHost(address), port: Number(port) };
}

/** QEMU's migration URI for an address `host:port` (`[v6]:port`) another agent answered; VALIDATION_FAILED without a port. */
export function addressUri(address: string, what: string): string {
  const { host, port } = addressEndpoint(address, what);
  return tcpUri(host, port);
}

/**
 * The ports of a fixed range in the order a listener that has no migration id (the link sink) tries them:
 * from `start` (any number: taken modulo the range size) upwards, wrapping round, each once.
 */
export function rangePortsFrom([lo, hi]: [number, number], start: number): number[] {
  const n = hi - lo + 1;
  const first = ((Math.floor(start) % n) + n) % n;
  return Array.from({ length: n }, (_, i) => lo + ((first + i) % n));
}

/**
 * Step 3: where the source streams to. The target's step-2 reply (incomingAddress) when the command
 * carries it, else the port derived from the migration id in the fixed range on the target's address.
 */
export function sourceEndpoint(cmd: StepCommand, portRange: [number, number] | undefined): Endpoint {
  const explicit = (cmd as { incomingAddress?: string }).incomingAddress;
  if (!explicit && !cmd.targetAddress) throw new FlexmigError(ErrorCode.ValidationFailed, `step 3 of migration ${cmd.migrationId} has no targetAddress: the source cannot reach the target`);
  if (!explicit && !portRange) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `step 3 of migration ${cmd.migrationId} carries no incomingAddress (the target's step-2 reply) and no fixed QEMU_MIGRATION_PORT_RANGE is set`);
  }
  return explicit
    ? addressEndpoint(explicit, `the incomingAddress of migration ${cmd.migrationId}`)
    : { host: addressHost(cmd.targetAddress!), port: migrationPort(cmd.migrationId, portRange!) };
}

