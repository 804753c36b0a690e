import { StreamSlots } from './stream-slots';

describe('StreamSlots (the cap on live streams)', () => {
  it('given the cap reached, then one more is refused with 503 until a slot is given back, and a slot is given back once', () => {
    const slots = new StreamSlots({ maxStreams: 2 });
    const a = slots.take();
    slots.take();
    expect(() => slots.take()).toThrow(expect.objectContaining({ code: 'UNAVAILABLE', details: { reason: 'too-many-streams', limit: 2 } }));
    a();
    a();
    expect(slots.inUse).toBe(1);
    slots.take();
    expect(() => slots.take()).toThrow(/SSE_MAX_STREAMS/);
  });
});
