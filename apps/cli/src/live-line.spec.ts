import { LiveLine } from './live-line';

const stream = (isTTY: boolean) => {
  const out = { isTTY, text: '', write(s: string) { out.text += s; return true; } };
  return out;
};

describe('the live progress line', () => {
  it('given a terminal, then each update rewrites one line in place, and a note goes above it on its own line', () => {
    const out = stream(true);
    const line = new LiveLine(out as unknown as NodeJS.WriteStream);
    line.update('10%');
    line.update('20%');
    line.note('step 4 done');
    line.update('30%');
    line.end();
    expect(out.text).toBe('\r\x1b[K10%\r\x1b[K20%\nstep 4 done\n\r\x1b[K30%\n');
  });

  it('given a pipe or a file, then a line per update whose key is new, no control characters', () => {
    const out = stream(false);
    const line = new LiveLine(out as unknown as NodeJS.WriteStream);
    line.update('12%', '1');
    line.update('15%', '1');
    line.update('21%', '2');
    line.note('done');
    line.end();
    expect(out.text).toBe('12%\n21%\ndone\n');
  });
});
