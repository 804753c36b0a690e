import { isUuid, parseEventId, parseEventTypes, parseImcMode, parsePositiveInt } from './args';

const usage = (message: string) => expect.objectContaining({ exitCode: 2, message: expect.stringContaining(message) });

describe('argument validation', () => {
  it('given --memory and --vcpus, then only positive integers pass', () => {
    expect(parsePositiveInt('--memory', '512')).toBe(512);
    for (const bad of ['0', '-1', '1.5', 'abc', '', '1e3', '99999999999999999999']) expect(() => parsePositiveInt('--memory', bad)).toThrow(usage('--memory must be a positive integer'));
  });

  it('given an IMC mode, then "unset" means null, "off" and names pass as given, empty is refused', () => {
    expect([parseImcMode('Haswell'), parseImcMode('off'), parseImcMode('UNSET')]).toEqual(['Haswell', 'off', null]);
    expect(() => parseImcMode('  ')).toThrow(usage('the mode is empty'));
  });

  it('given --types, then comma-separated names pass (trimmed) and empty names are refused', () => {
    expect(parseEventTypes('migration.completed, host.*')).toBe('migration.completed,host.*');
    for (const bad of ['a,,b', ',', 'migration completed']) expect(() => parseEventTypes(bad)).toThrow(usage('--types'));
  });

  it('given --since, then only an event id (a positive integer, or 0 for every event kept) passes', () => {
    expect(parseEventId('42')).toBe('42');
    expect(parseEventId('0')).toBe('0');
    for (const bad of ['-3', 'abc', '01', '00']) expect(() => parseEventId(bad)).toThrow(usage('--since'));
  });

  it('tells ids from names', () => {
    expect(isUuid('0b0f6f1e-5f43-4c55-9b1e-1b2c3d4e5f60')).toBe(true);
    expect(isUuid('web-1')).toBe(false);
  });
});
