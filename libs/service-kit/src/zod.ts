import { Injectable, PipeTransform, applyDecorators } from '@nestjs/common';
import { ApiBody, ApiQuery, ApiResponse } from '@nestjs/swagger';
import { z } from 'zod';
import { ErrorBodySchema, listOf, validationError } from '@flexmig/contracts';
import { apiSchema, componentName, componentRef, inlineSchema } from './openapi/components';

/** Validates a body, query or param with a contract schema; the error names every bad field. */
@Injectable()
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    readonly schema: S,
    private readonly what = 'request body',
  ) {}
  transform(value: unknown): z.infer<S> {
    const parsed = this.schema.safeParse(value ?? {});
    if (!parsed.success) throw validationError(`the ${this.what}`, parsed.error);
    return parsed.data;
  }
}

// The OpenAPI side of a route, from the same contract schemas the route validates with: bodies and
// responses are `$ref`s to components (openapi/components.ts fills them in when the document is made).

/** The request body: a contract schema (or one named with `apiSchema`), as a client may send it. */
export const ApiZodBody = (schema: z.ZodType, description?: string) =>
  ApiBody({ required: true, description, schema: componentRef(schema, 'input') });

/** A success response with its contract schema. */
export const ApiZodResponse = (status: number, schema: z.ZodType, description: string) =>
  ApiResponse({ status, description, content: { 'application/json': { schema: componentRef(schema, 'output') } } });

const lists = new Map<z.ZodType, z.ZodType>();
/** A list route's 200: `{items: [<item>]}` (component `<Item>List`). */
export const ApiZodList = (item: z.ZodType, description: string) => {
  let list = lists.get(item);
  if (!list) lists.set(item, (list = apiSchema(`${componentName(item)}List`, listOf(item))));
  return ApiZodResponse(200, list, description);
};

/** Each property of a query schema as an optional or required query parameter, with its schema. */
export const ApiZodQuery = (schema: z.ZodObject) =>
  applyDecorators(
    ...Object.entries(schema.shape).map(([name, property]) =>
      ApiQuery({ name, required: !(property as z.ZodType).safeParse(undefined).success, schema: inlineSchema(property as z.ZodType) as never }),
    ),
  );

const errorDescriptions: Record<number, string> = {
  400: 'the request is invalid (VALIDATION_FAILED names every bad field)',
  401: 'UNAUTHENTICATED: no valid bearer token',
  403: "FORBIDDEN: the token's roles do not allow this",
  404: 'NOT_FOUND: something the request names does not exist',
  409: 'the request conflicts with the current state (the code says which)',
  413: 'PAYLOAD_TOO_LARGE',
  422: 'the request cannot be carried out as asked (the code says why)',
  500: 'INTERNAL',
  502: 'AGENT_FAILED: an agent failed to do its part',
  503: 'UNAVAILABLE: a service or agent behind this one does not answer (retryable)',
  504: 'TIMEOUT (retryable)',
};

/** An error response: the one error body (`{code, message, details?, retryable?}`). */
export const ApiErrorResponse = (status: number, description = errorDescriptions[status] ?? 'error') =>
  // JSON even on a route that produces something else (a live stream refuses in JSON, before its first byte)
  ApiResponse({ status, description, content: { 'application/json': { schema: componentRef(ErrorBodySchema, 'output') } } });

export const ErrorResponses = (...statuses: number[]) => applyDecorators(...statuses.map((status) => ApiErrorResponse(status)));
