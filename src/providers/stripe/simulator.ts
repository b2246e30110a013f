// Plays Stripe on loopback for dev and tests: PaymentIntents (create/confirm, retrieve, list, search)
// in memory with Stripe's shapes and idempotency rules, signed webhook events, and seeded faults.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'undici';
import { signatureHeader } from './signature.ts';
import { mulberry32 } from '../../kernel/prng.ts';
import { readSimulatorState, writeSimulatorState } from '../simulator-state.ts';

export interface StripeFaults {
  /** Added before every API answer, in ms. */
  latencyMs: number;
  /** Probability of a 500 `api_error` before the endpoint runs (nothing created, nothing saved for the key). */
  error500: number;
  /** Probability that a create succeeds and is saved, and then no answer comes: the socket is destroyed after `hangMs`. */
  timeoutAfterSuccess: number;
  hangMs: number;
  /** Probability that a webhook event is delivered twice. */
  duplicateWebhook: number;
  /** Probability that a webhook event is never sent. */
  dropWebhook: number;
  /** Probability that a webhook event is held back by `reorderDelayMs`, so later events overtake it. */
  reorderWebhooks: number;
  reorderDelayMs: number;
  /**
   * A duplicate storm: when ≥ 1, every webhook event is sent 1…stormCopies times at once, each copy
   * after its own random 0…stormSpreadMs, so copies of one event and of different events interleave.
   */
  stormCopies: number;
  stormSpreadMs: number;
}

const NO_FAULTS: StripeFaults = {
  latencyMs: 0, error500: 0, timeoutAfterSuccess: 0, hangMs: 30_000,
  duplicateWebhook: 0, dropWebhook: 0, reorderWebhooks: 0, reorderDelayMs: 200, stormCopies: 0, stormSpreadMs: 0,
};

export interface StripeSimulatorOptions {
  port?: number;
  /** Seed for the fault decisions; the same seed and the same requests give the same faults. */
  seed?: number;
  faults?: Partial<StripeFaults>;
  /** When set, requests must carry `Authorization: Bearer <secretKey>`. */
  secretKey?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  /** Attempts per webhook delivery (non-2xx or network error retries). Default 4. */
  webhookMaxAttempts?: number;
  /** First retry delay; doubles each attempt. Default 50 ms. */
  webhookRetryDelayMs?: number;
  now?: () => Date;
  /** Keep PaymentIntents and idempotent replies in this JSON file, across restarts (`npm start`). */
  stateFile?: string;
}

export interface StripeSimulatorCounters {
  requests: number;
  paymentIntentsCreated: number;
  idempotentReplays: number;
  idempotencyErrors: number;
  error500: number;
  timeoutsAfterSuccess: number;
  eventsCreated: number;
  webhooksDropped: number;
  webhooksDuplicated: number;
  webhooksReordered: number;
  webhookAttempts: number;
  webhooksDelivered: number;
  webhooksFailed: number;
}

type Json = Record<string, unknown>;
interface StoredPi extends Json { id: string; created: number; status: string; metadata: Record<string, string> }
interface SavedResult { path: string; fingerprint: string; status: number; body: Json }
interface SavedState { intents: StoredPi[]; idempotency: [string, SavedResult][] }


const TEST_CARDS: Record<string, { ok: true } | { ok: false; code: string; decline_code: string; message: string }> = {
  pm_card_visa: { ok: true },
  pm_card_mastercard: { ok: true },
  pm_card_chargeDeclined: { ok: false, code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
  pm_card_insufficient_funds: { ok: false, code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
  pm_card_chargeDeclinedInsufficientFunds: { ok: false, code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
};

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;

export class StripeSimulator {
  readonly counters: StripeSimulatorCounters = {
    requests: 0, paymentIntentsCreated: 0, idempotentReplays: 0, idempotencyErrors: 0, error500: 0, timeoutsAfterSuccess: 0,
    eventsCreated: 0, webhooksDropped: 0, webhooksDuplicated: 0, webhooksReordered: 0, webhookAttempts: 0, webhooksDelivered: 0, webhooksFailed: 0,
  };
  private faults: StripeFaults;
  // Separate streams, so webhook faults do not shift when API traffic changes, and vice versa.
  private readonly apiRng: () => number;
  private readonly webhookRng: () => number;
  private readonly now: () => Date;
  private readonly intents: StoredPi[] = [];
  private readonly byId = new Map<string, StoredPi>();
  private readonly idempotency = new Map<string, SavedResult>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<Promise<void>>();
  private server: Server | undefined;
  private stopped = false;

  constructor(private readonly opts: StripeSimulatorOptions = {}) {
    this.faults = { ...NO_FAULTS, ...opts.faults };
    const seed = opts.seed ?? 1;
    this.apiRng = mulberry32(seed);
    this.webhookRng = mulberry32(seed ^ 0x9e3779b9);
    this.now = opts.now ?? (() => new Date());
    const saved = readSimulatorState<SavedState>(opts.stateFile);
    for (const pi of saved?.intents ?? []) {
      this.intents.push(pi);
      this.byId.set(pi.id, pi);
    }
    for (const [k, v] of saved?.idempotency ?? []) this.idempotency.set(k, v);
  }

  private save(): void {
    if (this.opts.stateFile) writeSimulatorState(this.opts.stateFile, { intents: this.intents, idempotency: [...this.idempotency] });
  }

  setFaults(f: Partial<StripeFaults>): void {
    this.faults = { ...this.faults, ...f };
  }

  async start(): Promise<{ url: string }> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.send(res, 500, { error: { type: 'api_error', message: `simulator: ${(e as Error).message}` } });
      });
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}` };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.allSettled([...this.pending]);
  }

  /** Resolves when every webhook delivery started so far has finished (delivered, dropped or given up). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** PaymentIntents as stored, oldest first. */
  paymentIntents(): readonly Json[] {
    return this.intents;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.faults.latencyMs > 0) await this.sleep(this.faults.latencyMs);
    if (this.opts.secretKey && req.headers.authorization !== `Bearer ${this.opts.secretKey}`) {
      return this.send(res, 401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided.' } });
    }
    if (this.apiRng() < this.faults.error500) {
      this.counters.error500++;
      return this.send(res, 500, { error: { type: 'api_error', message: 'An unknown error occurred. (simulated)' } });
    }
    const path = url.pathname;
    if (req.method === 'POST' && path === '/v1/payment_intents') return this.create(req, res, new URLSearchParams(body.toString('utf8')));
    if (req.method === 'GET' && path === '/v1/payment_intents') return this.send(res, 200, this.list(url.searchParams));
    if (req.method === 'GET' && path === '/v1/payment_intents/search') return this.search(res, url.searchParams);
    const m = /^\/v1\/payment_intents\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && m) {
      const pi = this.byId.get(decodeURIComponent(m[1]!));
      if (!pi) return this.send(res, 404, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${m[1]}'` } });
      return this.send(res, 200, pi);
    }
    return this.send(res, 404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${path}).` } });
  }

  private create(req: IncomingMessage, res: ServerResponse, form: URLSearchParams): void {
    const key = header(req, 'idempotency-key');
    const fingerprint = JSON.stringify([...form.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const path = '/v1/payment_intents';
    if (key !== undefined) {
      const saved = this.idempotency.get(key);
      if (saved) {
        if (saved.path !== path || saved.fingerprint !== fingerprint) {
          this.counters.idempotencyErrors++;
          return this.send(res, 400, { error: { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.` } });
        }
        this.counters.idempotentReplays++;
        return this.send(res, saved.status, saved.body, { 'idempotent-replayed': 'true' });
      }
    }
    // Validation failures are not saved under the key, as with Stripe: the request never began executing.
    const invalid = validateCreate(form);
    if (invalid) return this.send(res, 400, { error: { type: 'invalid_request_error', ...invalid } });

    const { status, body } = this.createPaymentIntent(form, key);
    if (key !== undefined) this.idempotency.set(key, { path, fingerprint, status, body });
    this.save();

    if (this.apiRng() < this.faults.timeoutAfterSuccess) {
      this.counters.timeoutsAfterSuccess++;
      // Done and saved, but the answer never comes: the client must treat this as unknown.
      const t = setTimeout(() => { this.timers.delete(t); req.socket.destroy(); }, this.faults.hangMs);
      this.timers.add(t);
      return;
    }
    this.send(res, status, body);
  }

  private createPaymentIntent(form: URLSearchParams, idempotencyKey: string | undefined): { status: number; body: Json } {
    const metadata: Record<string, string> = {};
    for (const [k, v] of form.entries()) {
      const mk = /^metadata\[(.+)\]$/.exec(k);
      if (mk) metadata[mk[1]!] = v;
    }
    const paymentMethod = form.get('payment_method');
    const confirm = form.get('confirm') === 'true';
    const pi: StoredPi = {
      id: newId('pi'),
      object: 'payment_intent',
      amount: Number(form.get('amount')),
      amount_received: 0,
      capture_method: 'automatic',
      client_secret: '',
      confirmation_method: 'automatic',
      created: Math.floor(this.now().getTime() / 1000),
      currency: form.get('currency')!.toLowerCase(),
      customer: form.get('customer'),
      description: form.get('description'),
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata,
      payment_method: paymentMethod,
      payment_method_types: ['card'],
      status: paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
    };
    pi.client_secret = `${pi.id}_secret_${randomBytes(8).toString('hex')}`;
    this.intents.push(pi);
    this.byId.set(pi.id, pi);
    this.counters.paymentIntentsCreated++;
    if (!confirm) return { status: 200, body: { ...pi } };

    const card = TEST_CARDS[paymentMethod ?? ''];
    const chargeId = newId('ch');
    pi.latest_charge = chargeId;
    if (card?.ok) {
      pi.status = 'succeeded';
      pi.amount_received = pi.amount;
      this.emit('payment_intent.succeeded', pi, idempotencyKey);
      return { status: 200, body: { ...pi } };
    }
    const decline = card && !card.ok ? card : undefined;
    const error = {
      type: 'card_error',
      code: decline?.code ?? 'card_declined',
      decline_code: decline?.decline_code ?? 'generic_decline',
      message: decline?.message ?? 'Your card was declined.',
      charge: chargeId,
      doc_url: 'https://stripe.com/docs/error-codes/card-declined',
    };
    pi.status = 'requires_payment_method';
    pi.last_payment_error = { ...error, payment_method: { id: paymentMethod, object: 'payment_method' } };
    this.emit('payment_intent.payment_failed', pi, idempotencyKey);
    return { status: 402, body: { error: { ...error, payment_intent: { ...pi } } } };
  }

  /** Stripe lists newest first; `starting_after` continues after the given id in that order. */
  private list(q: URLSearchParams): Json {
    const limit = clampLimit(q.get('limit'));
    const range = (op: string) => { const v = q.get(`created[${op}]`); return v === null ? undefined : Number(v); };
    const gte = range('gte'), gt = range('gt'), lt = range('lt'), lte = range('lte');
    const exact = q.get('created') === null ? undefined : Number(q.get('created'));
    let items = [...this.intents].reverse().filter((p) =>
      (gte === undefined || p.created >= gte) && (gt === undefined || p.created > gt) &&
      (lt === undefined || p.created < lt) && (lte === undefined || p.created <= lte) &&
      (exact === undefined || p.created === exact));
    const after = q.get('starting_after');
    if (after) {
      const i = items.findIndex((p) => p.id === after);
      items = i < 0 ? [] : items.slice(i + 1);
    }
    return { object: 'list', url: '/v1/payment_intents', has_more: items.length > limit, data: items.slice(0, limit) };
  }

  /** Supports the part of Stripe's search language seigo uses: `field:'value'` clauses joined by AND. */
  private search(res: ServerResponse, q: URLSearchParams): void {
    const query = q.get('query');
    if (!query) return this.send(res, 400, { error: { type: 'invalid_request_error', code: 'parameter_missing', param: 'query', message: 'Missing required param: query.' } });
    const clauses: { field: string; value: string }[] = [];
    for (const part of query.split(/\s+AND\s+/)) {
      const m = /^\s*(metadata\['((?:[^'\\]|\\.)+)'\]|status|currency|amount)\s*:\s*'((?:[^'\\]|\\.)*)'\s*$/.exec(part);
      if (!m) return this.send(res, 400, { error: { type: 'invalid_request_error', code: 'parameter_invalid', param: 'query', message: `simulator cannot parse query clause: ${part}` } });
      const unescape = (s: string) => s.replace(/\\(.)/g, '$1');
      clauses.push({ field: m[2] !== undefined ? `metadata.${unescape(m[2])}` : m[1]!, value: unescape(m[3]!) });
    }
    const matches = [...this.intents].reverse().filter((p) => clauses.every(({ field, value }) =>
      field.startsWith('metadata.') ? p.metadata[field.slice('metadata.'.length)] === value : String(p[field]) === value));
    const limit = clampLimit(q.get('limit'));
    const offset = Number(q.get('page') ?? 0) || 0;
    const data = matches.slice(offset, offset + limit);
    const hasMore = matches.length > offset + limit;
    this.send(res, 200, { object: 'search_result', url: '/v1/payment_intents/search', has_more: hasMore, next_page: hasMore ? String(offset + limit) : null, data });
  }

  private send(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': newId('req'), ...headers });
    res.end(text);
  }

  // ---- webhooks ----

  private emit(type: string, pi: StoredPi, idempotencyKey: string | undefined): void {
    this.counters.eventsCreated++;
    const event: Json = {
      id: newId('evt'),
      object: 'event',
      api_version: '2024-06-20',
      created: Math.floor(this.now().getTime() / 1000),
      data: { object: structuredClone(pi) },
      livemode: false,
      pending_webhooks: 1,
      request: { id: newId('req'), idempotency_key: idempotencyKey ?? null },
      type,
    };
    const { webhookUrl, webhookSecret } = this.opts;
    if (!webhookUrl || !webhookSecret) return;
    // Decide every fault up front, in a fixed order, so a seed gives the same decisions.
    const drop = this.webhookRng() < this.faults.dropWebhook;
    const duplicate = this.webhookRng() < this.faults.duplicateWebhook;
    const reorder = this.webhookRng() < this.faults.reorderWebhooks;
    if (drop) { this.counters.webhooksDropped++; return; }
    if (duplicate) this.counters.webhooksDuplicated++;
    if (reorder) this.counters.webhooksReordered++;
    const body = JSON.stringify(event);
    if (this.faults.stormCopies >= 1) {
      const copies = 1 + Math.floor(this.webhookRng() * this.faults.stormCopies);
      this.counters.webhooksDuplicated += copies - 1;
      for (let i = 0; i < copies; i++) this.track(this.deliver(webhookUrl, webhookSecret, body, Math.floor(this.webhookRng() * this.faults.stormSpreadMs)));
      return;
    }
    const copies = duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) this.track(this.deliver(webhookUrl, webhookSecret, body, reorder ? this.faults.reorderDelayMs : 0));
  }

  private async deliver(url: string, secret: string, body: string, delayMs: number): Promise<void> {
    if (delayMs > 0) await this.sleep(delayMs);
    const attempts = this.opts.webhookMaxAttempts ?? 4;
    let wait = this.opts.webhookRetryDelayMs ?? 50;
    for (let attempt = 1; attempt <= attempts && !this.stopped; attempt++) {
      this.counters.webhookAttempts++;
      try {
        // Signed at each attempt, as Stripe does: a retry carries a fresh timestamp.
        const res = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)', 'stripe-signature': signatureHeader(secret, body, this.now()) },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) { this.counters.webhooksDelivered++; return; }
      } catch {
        // network error: retried like a non-2xx
      }
      if (attempt < attempts) { await this.sleep(wait); wait *= 2; }
    }
    this.counters.webhooksFailed++;
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.timers.delete(t); resolve(); }, ms);
      this.timers.add(t);
    });
  }
}

function validateCreate(form: URLSearchParams): { code: string; param: string; message: string } | undefined {
  const amount = form.get('amount');
  if (amount === null) return { code: 'parameter_missing', param: 'amount', message: 'Missing required param: amount.' };
  if (!/^\d+$/.test(amount) || Number(amount) < 1) return { code: 'parameter_invalid_integer', param: 'amount', message: 'This value must be greater than or equal to 1.' };
  const currency = form.get('currency');
  if (currency === null) return { code: 'parameter_missing', param: 'currency', message: 'Missing required param: currency.' };
  if (!/^[a-z]{3}$/i.test(currency)) return { code: 'parameter_invalid_string', param: 'currency', message: `Invalid currency: ${currency}.` };
  const pm = form.get('payment_method');
  if (pm !== null && !(pm in TEST_CARDS)) return { code: 'resource_missing', param: 'payment_method', message: `No such PaymentMethod: '${pm}'` };
  return undefined;
}

function clampLimit(v: string | null): number {
  const n = v === null ? 10 : Number(v);
  return Number.isInteger(n) ? Math.min(100, Math.max(1, n)) : 10;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
