import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();
const quietly = (f: () => unknown) => {
  try {
    f();
  } catch {
    // already gone
  }
};

export interface NamespacedHost {
  id: string;
  /** The network namespace's name. */
  ns: string;
  /** Its address on the bridge. */
  ip: string;
}

/**
 * Hosts of their own on one machine: a network namespace per host, each with an address on a bridge
 * (10.<subnet>.0.0/24; the root namespace is .1), and partitions between them. A partition is a
 * blackhole route in a host's namespace: its packets to that address are dropped without a word, so an
 * open TCP connection hangs as it does when a real network splits. NATS and the services stay in the
 * root namespace (reachable on the bridge address); a host's processes run under `exec(hostId)`.
 */
export class HostNetwork {
  readonly hosts: NamespacedHost[];
  readonly bridge: string;
  readonly bridgeIp: string;

  constructor(
    hostIds: string[],
    /** The second octet of the subnet: one per suite that may run at the same time as another. */
    subnet: number,
    tag = `${subnet}x${process.pid % 10_000}`,
  ) {
    this.bridge = `fmbr${tag}`.slice(0, 15);
    this.bridgeIp = `10.${subnet}.0.1`;
    this.hosts = hostIds.map((id, i) => ({ id, ns: `fm${tag}h${i}`, ip: `10.${subnet}.0.${i + 2}` }));
  }

  /** Why this machine cannot make namespaces (not root, no `ip`), or undefined. */
  static unavailable(): string | undefined {
    if (userInfo().uid !== 0) return 'network namespaces need root';
    try {
      execFileSync('which', ['ip'], { stdio: 'ignore' });
    } catch {
      return 'ip (iproute2) is not installed';
    }
    const probe = `fmprobe${process.pid % 10_000}`;
    try {
      sh('ip', 'netns', 'add', probe);
      sh('ip', 'netns', 'del', probe);
    } catch (e) {
      return `this machine does not allow network namespaces (${(e as Error).message.split('\n')[0]})`;
    }
    return undefined;
  }

  host(hostId: string): NamespacedHost {
    const h = this.hosts.find((x) => x.id === hostId);
    if (!h) throw new Error(`host ${hostId} has no namespace (hosts: ${this.hosts.map((x) => x.id).join(', ')})`);
    return h;
  }

  /** The command prefix that runs a program in a host's namespace (it execs: the pid stays the program's). */
  exec(hostId: string): string[] {
    return ['ip', 'netns', 'exec', this.host(hostId).ns];
  }

  create(): void {
    this.destroy(); // leftovers of an interrupted run
    sh('ip', 'link', 'add', this.bridge, 'type', 'bridge');
    sh('ip', 'addr', 'add', `${this.bridgeIp}/24`, 'dev', this.bridge);
    sh('ip', 'link', 'set', this.bridge, 'up');
    for (const h of this.hosts) {
      sh('ip', 'netns', 'add', h.ns);
      sh('ip', 'link', 'add', `${h.ns}r`, 'type', 'veth', 'peer', 'name', `${h.ns}n`);
      sh('ip', 'link', 'set', `${h.ns}n`, 'netns', h.ns);
      sh('ip', 'link', 'set', `${h.ns}r`, 'master', this.bridge);
      sh('ip', 'link', 'set', `${h.ns}r`, 'up');
      sh('ip', 'netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.ip}/24`, 'dev', `${h.ns}n`);
      sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', `${h.ns}n`, 'up');
      sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up');
    }
  }

  /** Ends whatever still runs in the namespaces (a QEMU an agent left running, by design), then removes them. */
  destroy(): void {
    for (const h of this.hosts) {
      quietly(() => {
        for (const pid of sh('ip', 'netns', 'pids', h.ns).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      });
      quietly(() => sh('ip', 'netns', 'del', h.ns));
      quietly(() => sh('ip', 'link', 'del', `${h.ns}r`));
    }
    quietly(() => sh('ip', 'link', 'del', this.bridge));
  }

  /** From now on a host's packets to `address` are dropped (one direction suffices for TCP). */
  cut(hostId: string, address: string): void {
    sh('ip', 'netns', 'exec', this.host(hostId).ns, 'ip', 'route', 'add', 'blackhole', `${address}/32`);
  }

  mend(hostId: string, address: string): void {
    quietly(() => sh('ip', 'netns', 'exec', this.host(hostId).ns, 'ip', 'route', 'del', 'blackhole', `${address}/32`));
  }
}
