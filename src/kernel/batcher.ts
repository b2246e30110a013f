// Group commit: concurrent callers' items are written in micro-batches, so that many of them share
// one statement and one commit. A caller's promise settles only after its batch has committed.
// Used by the inbox (webhook intake) and the ledger (deposits credited outside a caller's
// transaction).

export interface BatcherOptions<I = unknown> {
  /** Most items in one batch. */
  maxBatch?: number;
  /** Batches in flight at once; more items wait and join the next batch. */
  maxInFlight?: number;
  /**
   * The row an item will lock (the ledger: the user's wallet). Two batches in flight never share
   * a key: an item whose key is held by a batch in flight waits for a later batch, so batches in
   * flight do not wait for each other's row locks, and items with one key are written in the order
   * they came. Without it, any items go together.
   */
  keyOf?: (item: I) => string;
}

/** Writes a batch; returns one outcome per item, in order: a value, or an Error for that item alone. */
export type FlushBatch<I, O> = (items: readonly I[]) => Promise<readonly (O | Error)[]>;

interface Pending<I, O> { item: I; resolve(o: O): void; reject(e: Error): void }

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private inFlight = 0;
  private lastBatch = 0;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly keyOf: ((item: I) => string) | undefined;
  /** The keys of the items in flight (no two batches in flight share one). */
  private readonly held = new Set<string>();

  constructor(private readonly flush: FlushBatch<I, O>, opts: BatcherOptions<I> = {}) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.maxInFlight = opts.maxInFlight ?? 2;
    this.keyOf = opts.keyOf;
  }

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      // Nothing in flight: go at once (low latency when idle). Otherwise start another batch only
      // when enough items can go to make it worth a commit of its own; the rest ride the next.
      const batch = this.take(this.inFlight > 0 ? Math.max(2, this.lastBatch >> 1) : 1);
      if (batch.length === 0) return;
      this.lastBatch = batch.length;
      this.inFlight++;
      const keys = this.keyOf ? new Set(batch.map((p) => this.keyOf!(p.item))) : undefined;
      for (const k of keys ?? []) this.held.add(k);
      void this.run(batch).finally(() => {
        for (const k of keys ?? []) this.held.delete(k);
        this.inFlight--;
        this.pump();
      });
    }
  }

  /**
   * The next batch: the first maxBatch waiting items whose key no batch in flight holds, or none
   * (the queue left as it is) when fewer than `min` can go.
   */
  private take(min: number): Pending<I, O>[] {
    if (!this.keyOf || this.held.size === 0) return this.queue.length < min ? [] : this.queue.splice(0, this.maxBatch);
    const batch: Pending<I, O>[] = [];
    const rest: Pending<I, O>[] = [];
    for (const p of this.queue) {
      if (batch.length < this.maxBatch && !this.held.has(this.keyOf(p.item))) batch.push(p);
      else rest.push(p);
    }
    if (batch.length < min) return [];
    this.queue = rest;
    return batch;
  }

  private async run(batch: Pending<I, O>[]): Promise<void> {
    try {
      const out = await this.flush(batch.map((p) => p.item));
      if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} returned ${out.length} outcomes`);
      batch.forEach((p, i) => {
        const o = out[i]!;
        if (o instanceof Error) p.reject(o);
        else p.resolve(o);
      });
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
    }
  }
}
