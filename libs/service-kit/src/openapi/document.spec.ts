import { Body, Controller, Module, Param, Post } from '@nestjs/common';
import SwaggerParser from '@apidevtools/swagger-parser';
import { z } from 'zod';
import { UuidSchema } from '@flexmig/contracts';
import { Role } from '../auth';
import { ApiZodBody, ApiZodResponse, ZodPipe } from '../zod';
import { apiSchema } from './components';
import { previewOpenApiDocument } from './document';

// A schema with a default: optional to send, always in the answer, so two components.
const DefaultedSchema = apiSchema('Defaulted', z.object({ id: UuidSchema, n: z.number().int().default(1), parent: UuidSchema.nullable() }));

// A request schema with a transform: JSON Schema describes only what is sent, which is the component.
const CsvSchema = apiSchema('Csv', z.object({ names: z.string().transform((v) => v.split(',')) }));

@Controller('api/v1/things')
class ThingsController {
  @Post(':id')
  @Role('operator')
  @ApiZodBody(DefaultedSchema)
  @ApiZodResponse(201, DefaultedSchema, 'the thing')
  create(@Param('id', new ZodPipe(UuidSchema, 'thing id')) id: string, @Body(new ZodPipe(DefaultedSchema)) body: z.infer<typeof DefaultedSchema>) {
    return { ...body, id };
  }

  @Post()
  @Role('operator')
  @ApiZodBody(CsvSchema)
  @ApiZodResponse(201, DefaultedSchema, 'the thing')
  fromCsv(@Body(new ZodPipe(CsvSchema)) body: z.infer<typeof CsvSchema>) {
    return { id: '00000000-0000-4000-8000-000000000000', n: body.names.length, parent: null };
  }
}

@Module({ controllers: [ThingsController] })
class ThingsModule {}

describe('openApiDocument', () => {
  let doc: Awaited<ReturnType<typeof previewOpenApiDocument>>;
  beforeAll(async () => {
    doc = await previewOpenApiDocument(ThingsModule, { name: 'things', description: 'a test service' });
  });

  it('is valid OpenAPI 3.0.3', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeDefined();
  });

  it('refers to components converted from the contracts: a request form where a default makes a field optional', () => {
    const op = doc.paths['/api/v1/things/{id}'].post!;
    expect(op.requestBody).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/DefaultedInput' } } } });
    expect(op.responses['201']).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/Defaulted' } } } });
    const schemas = doc.components!.schemas as Record<string, { required?: string[]; properties?: Record<string, unknown> }>;
    expect(Object.keys(schemas).sort()).toEqual(['Csv', 'Defaulted', 'DefaultedInput', 'ErrorBody', 'Uuid']);
    expect(schemas.Defaulted.required).toEqual(['id', 'n', 'parent']);
    expect(schemas.DefaultedInput.required).toEqual(['id', 'parent']);
    // a nullable reference carries the type `nullable` needs beside it in OpenAPI 3.0
    expect(schemas.Defaulted.properties!.parent).toEqual({ nullable: true, allOf: [{ $ref: '#/components/schemas/Uuid' }], type: 'string' });
  });

  it('describes a request schema with a transform by what a client sends', () => {
    expect(doc.paths['/api/v1/things'].post!.requestBody).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/Csv' } } } });
    expect(doc.components!.schemas!.Csv).toEqual({ type: 'object', properties: { names: { type: 'string' } }, required: ['names'] });
  });

  it("gives a path parameter the schema of the ZodPipe that validates it, and the operation the role's bearer scheme", () => {
    const op = doc.paths['/api/v1/things/{id}'].post!;
    expect(op.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { $ref: '#/components/schemas/Uuid' } }]);
    expect(op.security).toEqual([{ bearer: [] }]);
    expect(op.description).toBe('Requires a bearer token with the `operator` role (or a higher one).');
    expect(op.responses['403']).toMatchObject({ content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } });
  });

  it('refuses a body schema that has no component name, and says how to give it one', () => {
    expect(() => ApiZodBody(z.object({ x: z.string() }))).toThrow(/export it from @flexmig\/contracts as <Name>Schema, or name it with apiSchema/);
  });
});
