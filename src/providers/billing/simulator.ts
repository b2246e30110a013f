// A legacy billing system's stand-in: it knows only its own member ids and one
// subscription per member (start, renew, cancel, status), over HTTP on loopback with a bearer key.
// Every POST carries X-Request-Id; a request seen again gets its first answer, and GET
// /v1/requests/:id tells what became of one (404: never received), which is how an unanswered
// call is asked about. Faults as the other simulators: latency, 500s, and timeouts after success.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '../../kernel/prng.ts';

export interface BillingFaults {
  /** Each request waits a random 0…latencyMs first. */
  latencyMs?: number;
  /** Share of requests answered 500 without being processed. */
  error500?: number;
  /** Share of POSTs processed (and remembered under their request id) but never answered. */
  timeoutAfterSuccess?: number;
}

export interface BillingSimulatorOptions {
  apiKey: string;
  seed?: number | undefined;
  now?: (() => Date) | undefined;
}

export type BillingStatus = 'active' | 'cancelled' | 'expired';

/** The billing system's record of one member's subscription, as `GET /v1/members/:id/subscription` renders it. */
export interface BillingSubscription {
  member_id: string;
  status: BillingStatus;
  product_id: string;
  started_at: string;
  expires_at: string;
  renewals: number;
  cancelled_at: string | null;
  /** The caller's reference given at start (seigo's subscription id). */
  reference: string | null;
}

interface Stored { member_id: string; product_id: string; started_at: string; expires_at: string; renewals: number; cancelled_at: string | null; reference: string | null }
type Reply = { status: number; body: unknown };

const fail = (status: number, code: string, message: string): Reply => ({ status, body: { error: { code, message } } });
const MEMBER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class BillingSimulator {
  readonly counters = { requests: 0, processed: 0, replays: 0, error500: 0, timeouts: 0 };
  private readonly members = new Map<string, Stored>();
  private readonly requests = new Map<string, { method: string; path: string; reply: Reply } | 'in_flight'>();
  private readonly hanging = new Set<ServerResponse>();
  private faults: Required<BillingFaults> = { latencyMs: 0, error500: 0, timeoutAfterSuccess: 0 };
  private rand: () => number;
  private server: Server | undefined;
  private readonly now: () => Date;

  constructor(private readonly opts: BillingSimulatorOptions) {
    this.rand = mulberry32(opts.seed ?? 1);
    this.now = opts.now ?? (() => new Date());
  }

  /** Replaces the fault settings and restarts the fault schedule from `seed` (default: the constructor's). */
  setFaults(f: BillingFaults & { seed?: number }): void {
    const { seed, ...faults } = f;
    this.faults = { latencyMs: 0, error500: 0, timeoutAfterSuccess: 0, ...faults };
    this.rand = mulberry32(seed ?? this.opts.seed ?? 1);
  }

  async start(port = 0): Promise<{ url: string }> {
    if (this.server) throw new Error('the billing simulator is already running');
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => { if (!res.headersSent) this.send(res, fail(500, 'internal_error', String(e))); });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** The billing system's own record of a member (for end-to-end checks), or undefined. */
  subscription(memberId: string): BillingSubscription | undefined {
    const s = this.members.get(memberId);
    return s ? this.render(s) : undefined;
  }

  /** Every member's subscription as the billing system holds it now. */
  all(): BillingSubscription[] {
    return [...this.members.values()].map((s) => this.render(s));
  }

  private render(s: Stored): BillingSubscription {
    const status: BillingStatus = s.cancelled_at ? 'cancelled' : Date.parse(s.expires_at) <= this.now().getTime() ? 'expired' : 'active';
    return { ...s, status };
  }

  private send(res: ServerResponse, r: Reply): void {
    res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
  }

  private roll(p: number): boolean {
    return p > 0 && this.rand() < p;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (this.faults.latencyMs > 0) await sleep(Math.floor(this.rand() * this.faults.latencyMs));
    if (req.headers.authorization !== `Bearer ${this.opts.apiKey}`) return this.send(res, fail(401, 'unauthorized', 'a valid API key is required'));
    if (this.roll(this.faults.error500)) {
      this.counters.error500++;
      return this.send(res, fail(500, 'internal_error', 'the billing system failed; nothing was done'));
    }
    const path = new URL(req.url ?? '/', 'http://billing').pathname.replace(/\/+$/, '');
    const r = /^\/v1\/requests\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && r) {
      const seen = this.requests.get(decodeURIComponent(r[1]!));
      if (!seen) return this.send(res, fail(404, 'request_not_found', 'no request with this id was received'));
      if (seen === 'in_flight') return this.send(res, fail(409, 'in_progress', 'the request is still being processed'));
      return this.send(res, { status: 200, body: { request_id: decodeURIComponent(r[1]!), method: seen.method, path: seen.path, status: seen.reply.status, response: seen.reply.body } });
    }
    const m = /^\/v1\/members\/([^/]+)\/subscription(?:\/(start|renew|cancel))?$/.exec(path);
    if (!m || !MEMBER_ID.test(decodeURIComponent(m[1]!))) return this.send(res, fail(404, 'not_found', `no route ${req.method} ${path}`));
    const memberId = decodeURIComponent(m[1]!);
    const action = m[2];
    if (req.method === 'GET' && !action) {
      const s = this.subscription(memberId);
      return this.send(res, s ? { status: 200, body: s } : fail(404, 'no_subscription', `member ${memberId} has no subscription`));
    }
    if (req.method !== 'POST' || !action) return this.send(res, fail(404, 'not_found', `no route ${req.method} ${path}`));
    const requestId = req.headers['x-request-id'];
    if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 200) return this.send(res, fail(400, 'request_id_required', 'X-Request-Id is required'));
    const seen = this.requests.get(requestId);
    if (seen === 'in_flight') return this.send(res, fail(409, 'in_progress', 'a request with this id is in progress'));
    if (seen) {
      this.counters.replays++;
      return this.send(res, seen.reply);
    }
    this.requests.set(requestId, 'in_flight');
    let body: Record<string, unknown>;
    try {
      body = (chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {}) as Record<string, unknown>;
    } catch {
      body = { invalid: true };
    }
    const reply = this.apply(memberId, action as 'start' | 'renew' | 'cancel', body);
    this.requests.set(requestId, { method: req.method, path, reply });
    this.counters.processed++;
    if (this.roll(this.faults.timeoutAfterSuccess)) {
      // Done and remembered, but the answer never leaves: the caller can only time out.
      this.counters.timeouts++;
      this.hanging.add(res);
      res.once('close', () => this.hanging.delete(res));
      return;
    }
    this.send(res, reply);
  }

  private apply(memberId: string, action: 'start' | 'renew' | 'cancel', body: Record<string, unknown>): Reply {
    const current = this.members.get(memberId);
    const active = current !== undefined && this.render(current).status === 'active';
    const expiresAt = typeof body.expires_at === 'string' && !Number.isNaN(Date.parse(body.expires_at)) ? new Date(body.expires_at).toISOString() : null;
    const now = this.now().toISOString();
    switch (action) {
      case 'start': {
        if (typeof body.product_id !== 'string' || !expiresAt) return fail(400, 'invalid_request', 'product_id and expires_at are required');
        if (active) return fail(409, 'already_active', `member ${memberId} already has an active subscription`);
        const s: Stored = {
          member_id: memberId, product_id: body.product_id, started_at: now, expires_at: expiresAt, renewals: 0, cancelled_at: null,
          reference: typeof body.reference === 'string' ? body.reference : null,
        };
        this.members.set(memberId, s);
        return { status: 201, body: this.render(s) };
      }
      case 'renew': {
        if (!expiresAt) return fail(400, 'invalid_request', 'expires_at is required');
        if (!current || current.cancelled_at) return fail(409, 'not_active', `member ${memberId} has no subscription to renew`);
        // A renewal never moves the end backwards: the later of the two ends wins.
        if (Date.parse(expiresAt) > Date.parse(current.expires_at)) current.expires_at = expiresAt;
        if (typeof body.product_id === 'string') current.product_id = body.product_id;
        current.renewals++;
        return { status: 200, body: this.render(current) };
      }
      case 'cancel': {
        if (!current) return fail(409, 'not_active', `member ${memberId} has no subscription to cancel`);
        current.cancelled_at ??= now;
        return { status: 200, body: this.render(current) };
      }
    }
  }
}
