// Text for people, shared by the CLI and the web console. No imports: the console's bundle takes this file
// alone (`@flexmig/contracts/text`), not the schemas and their runtime.

/**
 * A list too long for one line, as the CLI and the console show it: its first `shown` items, then how many
 * more there are. `total` is what the answer counts, when it names fewer items than that (a report capped
 * to its first ids): "a, b, c and 22 more" always adds up to `total`.
 */
export function firstOf(items: readonly string[], total = items.length, shown = 10): string {
  const named = items.slice(0, Math.max(0, shown));
  const more = Math.max(0, total - named.length);
  if (named.length === 0) return more ? `${more}` : '';
  return more ? `${named.join(', ')} and ${more} more` : named.join(', ');
}

/**
 * Items that read alike, together: one group per distinct key, in the order each key first appears, each
 * with its items in their order. A cluster of 1,000 hosts has a handful of CPUs: the console shows a row
 * per group (its hosts by `firstOf`), not a row per host.
 */
export function groupsOf<T>(items: readonly T[], keyOf: (item: T) => string): { key: string; items: T[] }[] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups].map(([key, grouped]) => ({ key, items: grouped }));
}

/** How many of `items` share each key, the keys in the order they first appear. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** How many of each value, the most first (ties in the order they first appear): "998 up, 2 down". */
export function countsOf(values: readonly string[]): string {
  return [...countBy(values, (v) => v)]
    .sort((a, b) => b[1] - a[1])
    .map(([value, n]) => `${n} ${value}`)
    .join(', ');
}

/**
 * What a host lacks for a CPU mode, as a verdict's reason: "another vendor", or "lacks " and the features
 * (the first `shown`, then how many more: a newer mode adds dozens); empty when it lacks nothing.
 */
export function lacksText(h: { missing: readonly string[]; vendorMismatch: boolean }, shown = Number.POSITIVE_INFINITY): string {
  if (h.vendorMismatch) return 'another vendor';
  return h.missing.length ? `lacks ${firstOf(h.missing, h.missing.length, shown)}` : '';
}

/** A CPU as people read it: its model name, after its vendor unless the name already starts with it ("Intel(R) Xeon(R) …"). */
export function cpuName(h: { vendor: string; modelName: string }): string {
  const vendor = h.vendor.trim();
  return !vendor || h.modelName.toLowerCase().startsWith(vendor.toLowerCase()) ? h.modelName : `${vendor} ${h.modelName}`;
}
