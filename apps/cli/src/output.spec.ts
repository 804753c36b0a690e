import { parse } from 'yaml';
import { fields, formatBytes, formatDuration, parseOutputFormat, progressBar, render, table } from './output';

describe('output formatting', () => {
  it('given rows, then a table aligns columns under their headers, right-aligns numbers, and shows empty cells as -', () => {
    const text = table(
      [
        { name: 'vm-a', mem: 512, host: 'host-a' },
        { name: 'a-longer-vm', mem: 16384, host: null },
      ],
      [
        { header: 'NAME', value: (r) => r.name },
        { header: 'MEMORY', value: (r) => r.mem, right: true },
        { header: 'HOST', value: (r) => r.host },
      ],
    );
    expect(text.split('\n')).toEqual(['NAME         MEMORY  HOST', 'vm-a            512  host-a', 'a-longer-vm   16384  -']);
  });

  it('given no rows, then the table says so instead of printing bare headers', () => {
    expect(table([], [{ header: 'X', value: () => 1 }], 'no hosts')).toBe('no hosts');
  });

  it('given json or yaml, then render prints the data itself (parseable), never the table', () => {
    const data = [{ id: 'h1', maintenance: false, maxImcMode: null }];
    const asTable = () => 'TABLE';
    expect(JSON.parse(render(data, 'json', asTable))).toEqual(data);
    expect(parse(render(data, 'yaml', asTable))).toEqual(data);
    expect(render(data, 'table', asTable)).toBe('TABLE');
  });

  it('given an unknown --output, then a usage error (exit 2) naming the formats', () => {
    expect(parseOutputFormat('yaml')).toBe('yaml');
    expect(() => parseOutputFormat('xml')).toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining('table, json, yaml') }));
  });

  it('formats bytes in binary units, durations in ms, s or minutes, and booleans as yes/no', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(2 * 2 ** 30), formatBytes(300 * 2 ** 20)]).toEqual(['0 B', '1023 B', '1.5 KiB', '2.0 GiB', '300 MiB']);
    expect([formatDuration(null), formatDuration(42.4), formatDuration(1234), formatDuration(45_000), formatDuration(125_000)]).toEqual(['-', '42 ms', '1.23 s', '45.0 s', '2m05s']);
    expect(fields([['maintenance', true], ['mode', null]])).toBe('maintenance: yes\nmode:        -');
  });

  it('draws a progress bar clamped to 0..100 %', () => {
    expect(progressBar(50, 10)).toBe('[#####.....]  50.0%');
    expect(progressBar(0, 4)).toBe('[....]   0.0%');
    expect(progressBar(140, 4)).toBe('[####] 100.0%');
    expect(progressBar(Number.NaN, 4)).toBe('[....]   0.0%');
  });
});
