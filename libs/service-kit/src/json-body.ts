/**
 * The JSON text of an HTTP answer, as `JSON.stringify` writes it, made in pieces when it holds a long list.
 *
 * V8 makes one long JSON string much slower than several short ones: a page of 1,000 hosts (about 660 KB)
 * took 4.3 ms in one `JSON.stringify` on Node 24 here, and 0.9 ms as pieces of 100 items joined as bytes
 * (Node 20 was as slow, in `Buffer.from` of the one long string instead). Pieces of 200 items were as slow as
 * one string again. Measured in docs/scale.md, "A long answer in pieces".
 */

/** Items per piece of a long list (a list of more items is written in pieces of this many). */
export const JSON_PIECE_ITEMS = 100;

/**
 * `value` as JSON: a string when it holds no list longer than JSON_PIECE_ITEMS (itself, or one of its own
 * properties), else the bytes of the same text, made list piece by list piece. The text is the one
 * `JSON.stringify(value)` writes, with one difference no flexmig answer meets: a `toJSON(key)` of a list's
 * item is given its index within its piece.
 */
export function jsonBody(value: unknown): string | Buffer {
  if (isLongList(value)) return Buffer.concat(listPieces(value));
  if (!isPlainRecord(value) || !Object.values(value).some(isLongList)) return JSON.stringify(value);
  const pieces: Buffer[] = [];
  let first = true;
  for (const [key, v] of Object.entries(value)) {
    if (isLongList(v)) {
      pieces.push(Buffer.from(`${first ? '{' : ','}${JSON.stringify(key)}:`));
      pieces.push(...listPieces(v));
      first = false;
      continue;
    }
    // one property as JSON.stringify writes it in its object (a value it leaves out gives "{}")
    const text = JSON.stringify({ [key]: v }).slice(1, -1);
    if (!text) continue;
    pieces.push(Buffer.from(`${first ? '{' : ','}${text}`));
    first = false;
  }
  pieces.push(Buffer.from('}')); // a long list was written, so never "{}"
  return Buffer.concat(pieces);
}

function listPieces(list: readonly unknown[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < list.length; i += JSON_PIECE_ITEMS) {
    const text = JSON.stringify(list.slice(i, i + JSON_PIECE_ITEMS));
    // "[a,b]" → "[a,b" for the first piece, ",c,d" for the next ones; "]" closes the last
    pieces.push(Buffer.from(i === 0 ? text.slice(0, -1) : `,${text.slice(1, -1)}`));
  }
  pieces.push(Buffer.from(']'));
  return pieces;
}

const isLongList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length > JSON_PIECE_ITEMS && typeof (v as { toJSON?: unknown }).toJSON !== 'function';

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
