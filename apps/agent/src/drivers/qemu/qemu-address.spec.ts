import { randomUUID } from 'node:crypto';
import { FlexmigError, MigrationPolicySchema, StepCommand } from '@flexmig/contracts';
import { addressUri, hostPort, migrationPort, rangePortsFrom, sourceEndpoint, tcpUri } from './qemu-address';

const MIGRATION = '0b6d5c1e-4f3a-4c2b-9d8e-7f6a5b4c3d2e';

function step3(over: Partial<StepCommand> & { incomingAddress?: string } = {}): StepCommand {
  return {
    migrationId: MIGRATION,
    step: 3,
    stepName: 'transfer-memory',
    attempt: 1,
    role: 'source',
    vm: { id: randomUUID(), name: 'guest', memoryMiB: 128, vcpus: 1, cpuBaseline: 'Westmere' },
    sourceHostId: 'src-host',
    targetHostId: 'dst-host',
    targetAddress: '10.0.0.2:7000',
    policy: MigrationPolicySchema.parse({}),
    ...over,
  } as StepCommand;
}

describe('migrationPort: the fixed-range port both agents derive from the migration id', () => {
  it('given the same migration id, when asked twice, then the same port (the source computes the target’s)', () => {
    expect(migrationPort(MIGRATION, [40000, 40099])).toBe(migrationPort(MIGRATION, [40000, 40099]));
  });

  it('given many migrations, then every port is inside the inclusive range and both ends are reached', () => {
    const ports = Array.from({ length: 2000 }, () => migrationPort(randomUUID(), [5000, 5003]));
    expect(Math.min(...ports)).toBe(5000);
    expect(Math.max(...ports)).toBe(5003);
    expect(new Set(ports).size).toBe(4);
  });

  it('given a range of one port, then that port', () => {
    expect(migrationPort(MIGRATION, [4444, 4444])).toBe(4444);
  });

  it('given two different ids, then (for these) different ports: the id, not a constant, picks the port', () => {
    expect(migrationPort('00000000-0000-4000-8000-000000000001', [40000, 49999])).not.toBe(migrationPort('00000000-0000-4000-8000-000000000002', [40000, 49999]));
  });
});

describe('hostPort and tcpUri', () => {
  it('given an IPv4 address or a name, then host:port as it is', () => {
    expect(hostPort('10.0.0.2', 4000)).toBe('10.0.0.2:4000');
    expect(tcpUri('host-b.example', '4000')).toBe('tcp:host-b.example:4000');
  });

  it('given an IPv6 address, then it is bracketed so the port stays apart', () => {
    expect(hostPort('fd00::2', 4000)).toBe('[fd00::2]:4000');
    expect(tcpUri('::1', 0)).toBe('tcp:[::1]:0');
  });
});

describe('sourceEndpoint: where step 3 streams to', () => {
  it('given the target’s step-2 reply, then its address is used, even with a fixed range: the host as a certificate names it (no brackets, lower case), the port a number', () => {
    expect(sourceEndpoint(step3({ incomingAddress: '10.0.0.2:41234' }), [40000, 40099])).toEqual({ host: '10.0.0.2', port: 41234 });
    expect(sourceEndpoint(step3({ incomingAddress: '[FD00::2]:41234' }), undefined)).toEqual({ host: 'fd00::2', port: 41234 });
  });

  it('given no reply but a fixed range, then the target’s host with the port of the migration id', () => {
    expect(sourceEndpoint(step3(), [40000, 40099])).toEqual({ host: '10.0.0.2', port: migrationPort(MIGRATION, [40000, 40099]) });
  });

  it('given neither a reply nor a fixed range, then a validation error that names both ways', () => {
    const err = (() => {
      try {
        return sourceEndpoint(step3(), undefined);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FlexmigError);
    expect(err).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/no incomingAddress.*QEMU_MIGRATION_PORT_RANGE/) });
  });

  it('given no target address and no reply, then a validation error: the source cannot reach the target', () => {
    expect(() => sourceEndpoint(step3({ targetAddress: undefined }), [40000, 40099])).toThrow(/has no targetAddress: the source cannot reach the target/);
  });
});

describe('addressUri: the URI of an address another agent answered (the link sink)', () => {
  it('given host:port or [v6]:port, then the TCP URI', () => {
    expect(addressUri('10.0.0.2:47310', 'the sink')).toBe('tcp:10.0.0.2:47310');
    expect(addressUri('[FD00::2]:47310', 'the sink')).toBe('tcp:[fd00::2]:47310');
  });

  it('given no port or a port out of range, then a validation error naming what and the address', () => {
    for (const bad of ['10.0.0.2', '10.0.0.2:', '10.0.0.2:70000', '10.0.0.2:0', 'host:http']) {
      expect(() => addressUri(bad, 'the sink of dst')).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: `the sink of dst ${JSON.stringify(bad)} is not host:port` }));
    }
  });
});

describe('rangePortsFrom: the order a listener without a migration id tries a fixed range in', () => {
  it('given a start inside the range, then every port once, from the start, wrapping round', () => {
    expect(rangePortsFrom([5000, 5003], 2)).toEqual([5002, 5003, 5000, 5001]);
  });

  it('given any start (fractional, beyond the size, negative), then the same ports, each once', () => {
    for (const start of [0, 3.7, 9, -1, 1e9]) {
      const ports = rangePortsFrom([5000, 5003], start);
      expect([...ports].sort()).toEqual([5000, 5001, 5002, 5003]);
    }
    expect(rangePortsFrom([5000, 5003], 9)[0]).toBe(5001);
    expect(rangePortsFrom([5000, 5003], -1)[0]).toBe(5003);
  });

  it('given a range of one port, then that port', () => {
    expect(rangePortsFrom([4444, 4444], 0.5)).toEqual([4444]);
  });
});
