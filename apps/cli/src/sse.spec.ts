import { SseParser } from './sse';

describe('SSE parsing', () => {
  it('given messages split anywhere across chunks, with comments, then each whole message once, data parsed as JSON', () => {
    const p = new SseParser();
    const text = ': flexmig live stream\n\nid: 7\nevent: migration.completed\ndata: {"subject":"m1"}\n\n: keep-alive\n\nevent: migration.progress\ndata: {"percent":50}\n\n';
    const got = [];
    for (let i = 0; i < text.length; i += 5) got.push(...p.push(text.slice(i, i + 5)));
    expect(got).toEqual([
      { id: '7', event: 'migration.completed', data: { subject: 'm1' } },
      { id: undefined, event: 'migration.progress', data: { percent: 50 } },
    ]);
  });

  it('given CRLF line ends, several data lines, and no event name, then they are joined and the event is "message"', () => {
    expect(new SseParser().push('data: hello\r\ndata: world\r\n\r\n')).toEqual([{ id: undefined, event: 'message', data: 'hello\nworld' }]);
  });

  it('given an unfinished message, then nothing until its blank line', () => {
    const p = new SseParser();
    expect(p.push('event: x\ndata: 1\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ id: undefined, event: 'x', data: 1 }]);
  });
});
