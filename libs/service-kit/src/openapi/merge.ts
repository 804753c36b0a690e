/** An OpenAPI 3 document, as far as merging needs to know it. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown> | undefined>;
  tags?: { name: string; description?: string }[];
  [key: string]: unknown;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Replaces every `$ref` to a renamed component (`#/components/<kind>/<name>`) in a copy of `value`. */
function renameRefs(value: unknown, renamed: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, renamed));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && renamed.has(v) ? renamed.get(v) : renameRefs(v, renamed)]),
  );
}

/**
 * One document from the services' documents: every path of each (a path served by two is a mistake and
 * refused), the tags, and the components. A component two services define alike is kept once; defined
 * differently, each service's becomes `<service>_<name>` and that service's `$ref`s follow it, so no
 * reference points at another service's schema. The security schemes are the services' (the same bearer
 * scheme); the document's `servers` is the console itself.
 */
export function mergeOpenApi(parts: { service: string; document: OpenApiDocument }[], info: OpenApiDocument['info']): OpenApiDocument {
  const key = (kind: string, name: string) => `#/components/${kind}/${name}`;
  // which component names clash: defined by more than one service, differently
  const seen = new Map<string, unknown>();
  const clashing = new Set<string>();
  for (const { document } of parts) {
    for (const [kind, entries] of Object.entries(document.components ?? {})) {
      for (const [name, def] of Object.entries(entries ?? {})) {
        const k = key(kind, name);
        if (seen.has(k) && !sameJson(seen.get(k), def)) clashing.add(k);
        else seen.set(k, def);
      }
    }
  }
  const merged: OpenApiDocument = { openapi: parts[0]?.document.openapi ?? '3.0.0', info, servers: [{ url: '/' }], paths: {}, components: {}, tags: [] };
  const owners = new Map<string, string>();
  for (const { service, document } of parts) {
    const renamed = new Map<string, string>();
    for (const [kind, entries] of Object.entries(document.components ?? {})) {
      for (const name of Object.keys(entries ?? {})) if (clashing.has(key(kind, name))) renamed.set(key(kind, name), key(kind, `${service}_${name}`));
    }
    const doc = renameRefs(document, renamed) as OpenApiDocument;
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const method of Object.keys(item)) {
        const at = `${method.toUpperCase()} ${path}`;
        if (owners.has(at)) throw new Error(`${at} is in the documents of both ${owners.get(at)} and ${service}`);
        owners.set(at, service);
      }
      merged.paths![path] = { ...merged.paths![path], ...item };
    }
    for (const [kind, entries] of Object.entries(doc.components ?? {})) {
      const into = (merged.components![kind] ??= {});
      for (const [name, def] of Object.entries(entries ?? {})) into[clashing.has(key(kind, name)) ? `${service}_${name}` : name] = def;
    }
    for (const tag of doc.tags ?? []) if (!merged.tags!.some((t) => t.name === tag.name)) merged.tags!.push(tag);
  }
  return merged;
}
