import fc from 'fast-check';
import { propertyParams } from '../../test/helpers/property.ts';
import { describe, expect, it } from 'vitest';
import { Batcher } from './batcher.ts';

interface Item { key: string; n: number }

/** A batcher whose flushes finish when the test says, recording what each batch held. */
function harness(opts: { maxBatch?: number; maxInFlight?: number; keyed?: boolean }) {
  const batches: Item[][] = [];
  const open: { items: Item[]; finish(): void }[] = [];
  let inFlightKeys: string[][] = [];
  let overlap = false;
  const b = new Batcher<Item, number>((items) => new Promise((resolve) => {
    const keys = items.map((i) => i.key);
    if (inFlightKeys.some((ks) => ks.some((k) => keys.includes(k)))) overlap = true;
    inFlightKeys.push(keys);
    batches.push([...items]);
    open.push({
      items: [...items],
      finish: () => {
        inFlightKeys = inFlightKeys.filter((ks) => ks !== keys);
        resolve(items.map((i) => i.n));
      },
    });
  }), { maxBatch: opts.maxBatch ?? 4, maxInFlight: opts.maxInFlight ?? 2, ...(opts.keyed ? { keyOf: (i: Item) => i.key } : {}) });
  return { b, batches, open, overlap: () => overlap };
}

describe('Batcher', () => {
  it('settles every item with its own outcome, after its batch', async () => {
    const h = harness({});
    const ps = [1, 2, 3].map((n) => h.b.submit({ key: 'k', n }));
    while (h.open.length > 0) h.open.shift()!.finish();
    await expect(Promise.all(ps)).resolves.toEqual([1, 2, 3]);
  });

  it('with keys, never has two batches in flight that share a key, and keeps each key in order', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { minLength: 1, maxLength: 60 }),
      fc.array(fc.nat(3), { minLength: 1, maxLength: 60 }),
      async (keys, finishOrder) => {
        const h = harness({ keyed: true, maxBatch: 3, maxInFlight: 2 });
        const done: Item[] = [];
        const ps = keys.map((key, n) => h.b.submit({ key, n }).then(() => { done.push({ key, n }); }));
        let step = 0;
        while (done.length < keys.length) {
          await new Promise((r) => setImmediate(r));
          if (h.open.length === 0) continue;
          // Finish the batches in flight in an order the property chooses.
          const i = finishOrder[step++ % finishOrder.length]! % h.open.length;
          h.open.splice(i, 1)[0]!.finish();
        }
        await Promise.all(ps);
        expect(h.overlap()).toBe(false);
        const written = h.batches.flat();
        expect(written.map((i) => i.n).sort((x, y) => x - y)).toEqual(keys.map((_, n) => n));
        for (const k of new Set(keys)) {
          const ns = written.filter((i) => i.key === k).map((i) => i.n);
          expect(ns).toEqual([...ns].sort((x, y) => x - y));
        }
      },
    ), propertyParams('keyed batches never overlap', { runs: 200 }));
  });

  it('without keys, items of one key may be in two batches in flight at once', async () => {
    const h = harness({ maxBatch: 1, maxInFlight: 2 });
    const ps = [1, 2, 3].map((n) => h.b.submit({ key: 'k', n }));
    await new Promise((r) => setImmediate(r));
    expect(h.open.length).toBe(2);
    while (h.open.length > 0) {
      h.open.shift()!.finish();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(ps);
  });
});
