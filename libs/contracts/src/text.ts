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
