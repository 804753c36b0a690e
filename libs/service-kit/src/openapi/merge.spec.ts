import type { OpenAPIObject } from '@nestjs/swagger';
import { mergeOpenApi } from './merge';

const info = { title: 'merged', description: 'all', version: '1' };
const doc = (title: string, paths: OpenAPIObject['paths'], schemas: Record<string, object> = {}): OpenAPIObject => ({
  openapi: '3.0.3',
  info: { title, version: '1' },
  paths,
  tags: [{ name: title }],
  components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
});
const get = { get: { responses: { 200: { description: 'ok' } } } };

describe('mergeOpenApi', () => {
  it('unites paths, tags, components and security schemes', () => {
    const merged = mergeOpenApi([doc('a', { '/a': get }, { Uuid: { type: 'string' } }), doc('b', { '/b': get }, { Uuid: { type: 'string' }, B: { type: 'object' } })], info);
    expect(merged).toEqual({
      openapi: '3.0.3',
      info,
      paths: { '/a': get, '/b': get },
      tags: [{ name: 'a' }, { name: 'b' }],
      components: { schemas: { B: { type: 'object' }, Uuid: { type: 'string' } }, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    });
  });

  it('refuses a path two documents serve', () => {
    expect(() => mergeOpenApi([doc('a', { '/x': get }), doc('b', { '/x': get })], info)).toThrow('/x is in two documents');
  });

  it('refuses a component of one name that differs between documents', () => {
    expect(() => mergeOpenApi([doc('a', {}, { Id: { type: 'string' } }), doc('b', {}, { Id: { type: 'integer' } })], info)).toThrow('components.schemas.Id differs');
  });
});
