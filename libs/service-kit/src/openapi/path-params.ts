import type { INestApplication, Type } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { MetadataScanner } from '@nestjs/core';
import { ZodPipe } from '../zod';
import { componentNameOf, componentRef, inlineSchema, type SchemaObject } from './components';

interface RouteArg {
  index: number;
  data?: unknown;
  pipes?: unknown[];
}

/**
 * The schema of each path parameter that a route validates with a `ZodPipe` (`@Param('id', new
 * ZodPipe(UuidSchema))`), by operation id (`Controller_method`, Nest's default) and name: Nest's scan only
 * sees the parameter's TypeScript type, `string`.
 */
export function pathParameterSchemas(app: INestApplication): Map<string, Map<string, SchemaObject>> {
  // the container Nest's own Swagger scan reads (not part of the public INestApplication type)
  const container = (app as unknown as { container: { getModules(): Map<string, { controllers: Map<unknown, { metatype: Type | null }> }> } }).container;
  const out = new Map<string, Map<string, SchemaObject>>();
  for (const module of container.getModules().values()) {
    for (const { metatype } of module.controllers.values()) {
      if (!metatype) continue;
      for (const method of new MetadataScanner().getAllMethodNames(metatype.prototype)) {
        const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, metatype, method) ?? {}) as Record<string, RouteArg>;
        for (const [key, arg] of Object.entries(args)) {
          if (Number(key.split(':')[0]) !== RouteParamtypes.PARAM || typeof arg.data !== 'string') continue;
          const pipe = arg.pipes?.find((p): p is ZodPipe<never> => p instanceof ZodPipe);
          if (!pipe) continue;
          const operation = `${metatype.name}_${method}`;
          if (!out.has(operation)) out.set(operation, new Map());
          out.get(operation)!.set(arg.data, componentNameOf(pipe.schema) ? componentRef(pipe.schema, 'input') : inlineSchema(pipe.schema));
        }
      }
    }
  }
  return out;
}

/** Puts those schemas into a document's path parameters. */
export function withPathParameterSchemas<D extends { paths: Record<string, object> }>(doc: D, schemas: Map<string, Map<string, SchemaObject>>): D {
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item) as { operationId?: string; parameters?: { name: string; in: string; schema?: unknown }[] }[]) {
      const byName = op.operationId ? schemas.get(op.operationId) : undefined;
      for (const p of op.parameters ?? []) {
        const schema = p.in === 'path' ? byName?.get(p.name) : undefined;
        if (schema) p.schema = schema;
      }
    }
  }
  return doc;
}
