// A test's Server-Sent Events client: fetch with a streamed body, parsed as the WHATWG format says
// (fields `id`, `event`, `data`; a line starting with `:` is a comment; a blank line ends a message).

export interface SseMessage {
  id?: string;
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  /** The error body when the stream was refused. */
  error?: any;
  /** The next message, skipping comments; undefined when the stream ended. */
  next(): Promise<SseMessage | undefined>;
  /** Comments received so far (heartbeats). */
  comments: string[];
  close(): void;
}

export async function openSse(url: string, opts: { token?: string | null; lastEventId?: string } = {}): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: {
      accept: 'text/event-stream',
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
    },
    signal: abort.signal,
  });
  const comments: string[] = [];
  if (res.status !== 200 || !res.body) {
    const text = await res.text();
    return { status: res.status, error: text ? JSON.parse(text) : undefined, next: async () => undefined, comments, close: () => abort.abort() };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const next = async (): Promise<SseMessage | undefined> => {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message: Partial<SseMessage> & { data?: string } = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          const field = /^(id|event|data): ?(.*)$/.exec(line);
          if (field) (message as Record<string, string>)[field[1]] = field[2];
        }
        if (message.data !== undefined) return { id: message.id, event: message.event ?? 'message', data: JSON.parse(message.data) };
        continue;
      }
      const chunk = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (chunk.done) return undefined;
      buffer += chunk.value;
    }
  };
  return { status: 200, next, comments, close: () => abort.abort() };
}

/** Messages until `until` says stop (that one included), or the stream ends. */
export async function readUntil(stream: SseStream, until: (m: SseMessage) => boolean): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for (let m = await stream.next(); m; m = await stream.next()) {
    out.push(m);
    if (until(m)) break;
  }
  return out;
}
