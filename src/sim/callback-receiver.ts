// Plays the wallet's backend receiving seigo's user notices (deposit.* through the outbox): a real
// HTTP endpoint on loopback that verifies the Standard Webhooks signature, dedupes on webhook-id
// (= the delivery id) as receivers must, and fails on purpose: an error before it processes a
// notice, or after (the notice is processed but the acknowledgement is lost, so seigo sends it again).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../providers/standard-webhooks/signature.ts';
import { mulberry32 } from '../kernel/prng.ts';

export interface CallbackReceiverFaults {
  /** Share of requests answered 500 before anything is processed. */
  errorBefore: number;
  /** Share of requests processed and then answered 500 (a lost acknowledgement). */
  errorAfter: number;
}

const NO_FAULTS: CallbackReceiverFaults = { errorBefore: 0, errorAfter: 0 };

export class CallbackReceiver {
  /** Delivery ids this receiver processed, with how many times each arrived after the first. */
  readonly processed = new Map<string, { topic: string; redeliveries: number }>();
  /** Delivery ids it answered 2xx (acknowledged). */
  readonly acknowledged = new Set<string>();
  readonly counters = { requests: 0, badSignatures: 0, errorsBefore: 0, errorsAfter: 0 };
  private faults = NO_FAULTS;
  private readonly rand: () => number;
  private server: Server | undefined;

  constructor(private readonly opts: { secret: string; seed?: number }) {
    this.rand = mulberry32((opts.seed ?? 1) ^ 0x5eed);
  }

  setFaults(f: Partial<CallbackReceiverFaults>): void {
    this.faults = { ...NO_FAULTS, ...f };
  }

  async start(): Promise<{ url: string }> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.counters.requests++;
        const body = Buffer.concat(chunks);
        const h = (n: string) => (typeof req.headers[n] === 'string' ? req.headers[n] : undefined);
        const id = h('webhook-id');
        const check = verifySignature([this.opts.secret], { id, timestamp: h('webhook-timestamp'), signature: h('webhook-signature') }, body, new Date());
        if (!check.ok || !id) {
          this.counters.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        if (this.rand() < this.faults.errorBefore) {
          this.counters.errorsBefore++;
          res.writeHead(500).end();
          return;
        }
        const seen = this.processed.get(id);
        if (seen) seen.redeliveries++;
        else this.processed.set(id, { topic: topicOf(body), redeliveries: 0 });
        if (this.rand() < this.faults.errorAfter) {
          this.counters.errorsAfter++;
          res.writeHead(500).end();
          return;
        }
        this.acknowledged.add(id);
        res.writeHead(204).end();
      });
    });
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/wallet/notices` };
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

function topicOf(body: Buffer): string {
  try {
    const t = (JSON.parse(body.toString('utf8')) as { type?: unknown }).type;
    return typeof t === 'string' ? t : '';
  } catch {
    return '';
  }
}
