// Group commit: concurrent callers' items are written in micro-batches, so that many of them share
// one statement and one commit. A caller's promise settles only after its batch has committed.
// Used by the inbox (webhook intake) and the ledger (deposits credited outside a caller's
// transaction).

export interface BatcherOptions {
  /** Most items in one batch. */
  maxBatch?: number;
  /** Batches in flight at once; more items wait and join the next batch. */
  maxInFlight?: number;
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

  constructor(private readonly flush: FlushBatch<I, O>, opts: BatcherOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.maxInFlight = opts.maxInFlight ?? 2;
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
      // when enough items wait to make it worth a commit of its own; the rest ride the next.
      if (this.inFlight > 0 && this.queue.length < Math.max(2, this.lastBatch >> 1)) return;
      const batch = this.queue.splice(0, this.maxBatch);
      this.lastBatch = batch.length;
      this.inFlight++;
      void this.run(batch).finally(() => { this.inFlight--; this.pump(); });
    }
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
