/**
 * The host part of `host:port`, `[v6]:port`, a bare host or a bare IPv6 address, lower-cased (host names
 * and IPv6 hex digits are case-insensitive). One parser for the agent's addresses: the listen host of the
 * qemu driver, the stream's target, and the check that a stream goes to the target host.
 */
export function addressHost(address: string): string {
  const a = address.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) return bracketed[1]!.toLowerCase();
  const colons = a.split(':').length - 1;
  if (colons === 1) return a.slice(0, a.indexOf(':')).toLowerCase();
  return a.toLowerCase(); // a bare host, or a bare IPv6 address
}
