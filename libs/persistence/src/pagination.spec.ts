import { decodeCursor, encodeCursor } from './pagination';

describe('page cursors', () => {
  it('round-trip an id, opaque and URL-safe', () => {
    for (const id of ['host-a', '6f1c3c7e-8a51-4b0e-9b53-2f1d1c7e0a11']) {
      const c = encodeCursor(id);
      expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(c).not.toContain(id);
      expect(decodeCursor(c)).toBe(id);
    }
  });

  it('refuse what no list gave, saying what to do', () => {
    for (const bad of ['', Buffer.from('v2:x').toString('base64url'), Buffer.from('v1:').toString('base64url'), 'plain-text']) {
      expect(() => decodeCursor(bad)).toThrow(/pass the nextCursor of the previous page/);
    }
  });
});
