import type { OpenAPIObject } from '@nestjs/swagger';
import { OPENAPI_VERSION } from './document';

/**
 * One OpenAPI document of several services' (the console serves inventory's, the scheduler's and
 * cpu-compat's as one at /api/v1/openapi.json, behind one base URL). Paths, tags, components and security
 * schemes are united; a path served by two documents, or a component or scheme of one name that differs
 * between them, is an error (it would make one of them lie), so it throws naming it.
 */
export function mergeOpenApi(docs: OpenAPIObject[], info: { title: string; description: string; version: string }): OpenAPIObject {
  const paths: OpenAPIObject['paths'] = {};
  const tags = new Map<string, { name: string; description?: string }>();
  const components: Record<string, Record<string, unknown>> = {};
  for (const doc of docs) {
    for (const [path, item] of Object.entries(doc.paths)) {
      if (paths[path]) throw new Error(`mergeOpenApi: ${path} is in two documents (${doc.info.title} and another)`);
      paths[path] = item;
    }
    for (const tag of doc.tags ?? []) if (!tags.has(tag.name)) tags.set(tag.name, tag);
    for (const [kind, entries] of Object.entries(doc.components ?? {}) as [string, Record<string, unknown>][]) {
      const into = (components[kind] ??= {});
      for (const [name, value] of Object.entries(entries)) {
        if (name in into && JSON.stringify(into[name]) !== JSON.stringify(value)) {
          throw new Error(`mergeOpenApi: components.${kind}.${name} differs between ${doc.info.title} and another document`);
        }
        into[name] = value;
      }
    }
  }
  const sorted = <T>(o: Record<string, T>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  return {
    openapi: OPENAPI_VERSION,
    info,
    paths: sorted(paths),
    tags: [...tags.values()].sort((a, b) => a.name.localeCompare(b.name)),
    components: Object.fromEntries(Object.entries(components).map(([k, v]) => [k, sorted(v)])),
  };
}
