import { Injectable, PipeTransform, applyDecorators } from '@nestjs/common';
import { ApiBody, ApiResponse } from '@nestjs/swagger';
import { z } from 'zod';
import { validationError } from '@flexmig/contracts';

/** Validates a body, query or param with a contract schema; the error names every bad field. */
@Injectable()
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    private readonly schema: S,
    private readonly what = 'request body',
  ) {}
  transform(value: unknown): z.infer<S> {
    const parsed = this.schema.safeParse(value ?? {});
    if (!parsed.success) throw validationError(`the ${this.what}`, parsed.error);
    return parsed.data;
  }
}

/** JSON Schema of a contract schema for the OpenAPI document (one source of truth: the contract). */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

export const ApiZodBody = (schema: z.ZodType, description?: string) =>
  ApiBody({ schema: jsonSchemaOf(schema) as never, description });

export const ApiZodResponse = (status: number, schema: z.ZodType, description: string) =>
  applyDecorators(ApiResponse({ status, description, schema: z.toJSONSchema(schema, { unrepresentable: 'any' }) as never }));

export const ErrorResponses = (...statuses: number[]) =>
  applyDecorators(...statuses.map((status) => ApiResponse({ status, description: 'error: {code, message, details}' })));
