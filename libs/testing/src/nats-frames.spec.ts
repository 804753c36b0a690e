import { NatsFrameReader } from './nats-frames';

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('NatsFrameReader', () => {
  const stream = [
    'INFO {"server_id":"x","max_payload":1048576}\r\n',
    'PUB a.b _INBOX.1 5\r\nhello\r\n',
    'HPUB a.c 20 25\r\nNATS/1.0\r\nX-A: 1\r\n\r\nworld\r\n',
    'MSG _INBOX.1 7 3\r\nyes\r\n',
    'HMSG q.r 9 reply.to 12 14\r\nNATS/1.0\r\n\r\nok\r\n',
    'PING\r\n',
    'msg lower.case 1 0\r\n\r\n',
  ].join('');

  it('cuts a stream into whole frames whose bytes are the stream again', () => {
    const frames = new NatsFrameReader().push(bytes(stream));
    expect(frames.map((f) => [f.op, f.subject, f.payload.toString('latin1')])).toEqual([
      ['INFO', undefined, ''],
      ['PUB', 'a.b', 'hello'],
      ['HPUB', 'a.c', 'NATS/1.0\r\nX-A: 1\r\n\r\nworld'],
      ['MSG', '_INBOX.1', 'yes'],
      ['HMSG', 'q.r', 'NATS/1.0\r\n\r\nok'],
      ['PING', undefined, ''],
      ['MSG', 'lower.case', ''],
    ]);
    expect(Buffer.concat(frames.map((f) => f.raw)).toString('latin1')).toBe(stream);
  });

  it('gives the same frames whatever the chunks, and keeps a partial frame until it is whole', () => {
    for (const size of [1, 2, 3, 7, 13]) {
      const reader = new NatsFrameReader();
      const frames = [];
      for (let i = 0; i < stream.length; i += size) frames.push(...reader.push(bytes(stream.slice(i, i + size))));
      expect(frames.map((f) => f.raw.toString('latin1')).join('')).toBe(stream);
      expect(frames).toHaveLength(7);
      expect(reader.pending).toBe(0);
    }
    const reader = new NatsFrameReader();
    expect(reader.push(bytes('PUB a 10\r\n12345'))).toEqual([]);
    expect(reader.pending).toBe(15);
    expect(reader.push(bytes('67890\r\n')).map((f) => f.payload.toString())).toEqual(['1234567890']);
  });

  it('refuses bytes that are not NATS', () => {
    expect(() => new NatsFrameReader().push(bytes('PUB only\r\n'))).toThrow(/malformed NATS PUB line/);
    expect(() => new NatsFrameReader().push(bytes('PUB a b -3\r\n'))).toThrow(/malformed NATS PUB size/);
    expect(() => new NatsFrameReader().push(Buffer.alloc(70 * 1024, 0x41))).toThrow(/not a NATS stream/);
  });
});
