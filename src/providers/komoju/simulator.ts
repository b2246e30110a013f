// A KOMOJU stand-in for development and tests: a real HTTP server on loopback speaking the Payments
// API v1 shapes (create / show / list / cancel, Basic auth, X-KOMOJU-IDEMPOTENCY) and sending signed
// webhooks, with seeded fault injection. The customer's side (paying at the till, the bank reporting
// a transfer, the deadline passing) is driven by plain methods, never over HTTP.
import { randomInt, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { KONBINI_STORES, PRELIMINARY_CANCELLED_EVENT, PRELIMINARY_PAID_EVENT, type KomojuEvent, type PaymentStatus } from './payment.ts';
import { sign } from './signature.ts';
import { mulberry32 } from '../../kernel/prng.ts';
import { readSimulatorState, writeSimulatorState } from '../simulator-state.ts';

export interface KomojuFaults {
  /** Each API request waits a random 0…latencyMs first. */
  latencyMs?: number;
  /** Share of API requests answered 500 without being processed. */
  error500?: number;
  /** Share of POSTs processed (and remembered under their idempotency key) but never answered. */
  timeoutAfterSuccess?: number;
  /** Share of webhooks delivered twice (same event, as KOMOJU redelivers). */
  duplicateWebhook?: number;
  /** Share of webhooks never sent. */
  dropWebhook?: number;
  /** Share of webhooks held back and sent after the next one. */
  reorderWebhooks?: number;
  /**
   * A duplicate storm: when ≥ 1, every webhook is sent 1…stormCopies times, all at once rather than one
   * delivery after another, each copy after its own random 0…stormSpreadMs (so events arrive out of order).
   */
  stormCopies?: number;
  stormSpreadMs?: number;
}

export interface KomojuSimulatorOptions {
  secretKey: string;
  webhookSecret: string;
  webhookUrl?: string | undefined;
  seed?: number | undefined;
  now?: (() => Date) | undefined;
  /** Days until `payment_deadline` (23:59:59 JST of that day). Default 3. */
  paymentWindowDays?: number | undefined;
  /** Delivery attempts per webhook before giving up. Default 5. */
  webhookAttempts?: number | undefined;
  /** First retry delay; doubles each attempt. Default 20 ms. */
  webhookRetryDelayMs?: number | undefined;
  /** The fee KOMOJU reports on each disbursement. Default 0. */
  disbursementFee?: number | undefined;
  /** Carry out each refund request / disbursement this long after it is made (as `npm start` does); unset: only on `settlePayouts`. */
  settlePayoutsAfterMs?: number | undefined;
  /** Keep payments, disbursements and idempotent replies in this JSON file, across restarts (`npm start`). */
  stateFile?: string | undefined;
}

interface SavedState { payments: SimPayment[]; disbursements: SimDisbursement[]; idempotency: [string, ApiReply][] }

/** The customer's and the bank's side over HTTP, beside the API: `POST /_sim/payments/:id/<action>` (Basic auth as the API). */
const CONTROL_ROUTE = /^\/_sim\/payments\/([^/]+)\/(pay|confirm|cancel-preliminary|expire|pay-after-expiry)$/;

interface SimPayment {
  id: string;
  resource: 'payment';
  status: PaymentStatus;
  amount: number;
  tax: number;
  total: number;
  currency: string;
  payment_deadline: string;
  payment_details: Record<string, unknown>;
  payment_method_fee: number;
  captured_at: string | null;
  external_order_num: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
  amount_refunded: number;
  refunds: unknown[];
  refund_requests: SimRefundRequest[];
  /** Simulator state, not rendered: a 速報 was sent and neither confirmed nor withdrawn yet. */
  preliminaryPending: boolean;
}

type ApiReply = { status: number; body: unknown };

/** A refund request (POST /api/v1/payments/:id/refund_request): a bank transfer KOMOJU makes by hand, later. */
export interface SimRefundRequest {
  id: string;
  payment: string;
  /** Not in KOMOJU's documented object; kept so the simulator can mark the payment refunded. */
  amount: number;
  customer_name: string;
  bank_name: string;
  bank_code: string | null;
  branch_name: string | null;
  branch_number: string;
  account_type: string;
  account_number: string;
  include_payment_method_fee: boolean;
  description: string | null;
  status: 'pending' | 'completed' | 'rejected';
  created_at: string;
}

/**
 * A disbursement (POST /api/v1/disbursements): a payout from the merchant's KOMOJU balance to a bank
 * account. Its statuses are KOMOJU's DisbursementStatus enum (see payoutStatus in index.ts).
 */
export interface SimDisbursement {
  id: string;
  resource: 'disbursement';
  currency: string;
  amount: number;
  fee: number;
  fee_tax: number;
  status: 'pending' | 'paid' | 'failed' | 'cancelled';
  bank_code: string;
  branch_code: string;
  account_type: string;
  account_number: string;
  account_name_kana: string;
  error: string | null;
  external_id: string | null;
  created_at: string;
  last_updated_at: string;
}

const KONBINI_LIMIT = 300_000;
const PAY_EASY_LIMIT = 999_999;


const apiError = (status: number, code: string, message: string, param?: string): ApiReply =>
  ({ status, body: { error: { code, message, ...(param ? { param } : {}) } } });

export class KomojuSimulator {
  readonly counters = {
    requests: 0, created: 0, idempotentReplays: 0, error500: 0, timeouts: 0, cancelled: 0,
    webhooksEmitted: 0, webhookAttempts: 0, webhooksDelivered: 0, webhooksFailed: 0,
    webhooksDuplicated: 0, webhooksDropped: 0, webhooksReordered: 0, unmatchedTransfers: 0,
    refundRequests: 0, disbursements: 0,
  };
  /** Every event KOMOJU decided to send, in order, before delivery faults. */
  readonly events: KomojuEvent[] = [];
  /** Ids of the events the `dropWebhook` fault kept from ever being sent. */
  readonly droppedEventIds = new Set<string>();

  private readonly payments = new Map<string, SimPayment>();
  /** The first payment made for each external_order_num, so a customer finds theirs without scanning them all. */
  private readonly byOrder = new Map<string, string>();
  private readonly disbursements = new Map<string, SimDisbursement>();
  private readonly idempotency = new Map<string, ApiReply | 'in_flight'>();
  private readonly deliveries = new Set<Promise<void>>();
  private readonly hanging = new Set<ServerResponse>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private held: KomojuEvent[] = [];
  private chain: Promise<void> = Promise.resolve();
  private faults: Required<KomojuFaults> = { latencyMs: 0, error500: 0, timeoutAfterSuccess: 0, duplicateWebhook: 0, dropWebhook: 0, reorderWebhooks: 0, stormCopies: 0, stormSpreadMs: 0 };
  private faultRand: () => number;
  private idRand: () => number;
  private server: Server | undefined;
  private readonly now: () => Date;
  webhookUrl: string | undefined;

  constructor(private readonly opts: KomojuSimulatorOptions) {
    const seed = opts.seed ?? 1;
    this.faultRand = mulberry32(seed);
    this.idRand = mulberry32(seed ^ 0x9e3779b9);
    this.now = opts.now ?? (() => new Date());
    this.webhookUrl = opts.webhookUrl;
    this.load();
  }

  private load(): void {
    const saved = readSimulatorState<SavedState>(this.opts.stateFile);
    if (!saved) return;
    for (const p of saved.payments) this.payments.set(p.id, p);
    for (const d of saved.disbursements) this.disbursements.set(d.id, d);
    for (const [k, v] of saved.idempotency) this.idempotency.set(k, v);
    // The id stream restarts from the seed: draw it from elsewhere, or the next ids would repeat saved ones.
    this.idRand = mulberry32(randomInt(2 ** 31));
    if (this.pendingPayouts().refundRequests.length + this.pendingPayouts().disbursements.length > 0) this.settleLater();
  }

  /** Writes the state file (when there is one) after a change. */
  private save(): void {
    if (!this.opts.stateFile) return;
    const idempotency = [...this.idempotency].filter((e): e is [string, ApiReply] => e[1] !== 'in_flight');
    writeSimulatorState(this.opts.stateFile, { payments: [...this.payments.values()], disbursements: [...this.disbursements.values()], idempotency });
  }

  /** Replaces the fault settings and restarts the fault schedule from `seed` (default: the constructor's). */
  setFaults(f: KomojuFaults & { seed?: number }): void {
    this.faults = { latencyMs: 0, error500: 0, timeoutAfterSuccess: 0, duplicateWebhook: 0, dropWebhook: 0, reorderWebhooks: 0, stormCopies: 0, stormSpreadMs: 0, ...stripSeed(f) };
    this.faultRand = mulberry32(f.seed ?? this.opts.seed ?? 1);
  }

  async start(): Promise<{ url: string }> {
    if (this.server) throw new Error('the KOMOJU simulator is already running');
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.send(res, apiError(500, 'internal_server_error', String(e)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await this.idle();
  }

  /** Sends anything held back for reordering and waits until every webhook delivery has ended. */
  async idle(): Promise<void> {
    this.releaseHeld();
    while (this.deliveries.size > 0) await Promise.allSettled([...this.deliveries]);
  }

  payment(id: string): Readonly<Record<string, unknown>> | undefined {
    const p = this.payments.get(id);
    return p ? render(p) : undefined;
  }

  /** The id of the first payment made with this external_order_num (the merchant's order), if any. */
  paymentIdForOrder(orderNum: string): string | undefined {
    return this.byOrder.get(orderNum);
  }

  /** Every payment as KOMOJU holds it now, oldest first: the provider's own record, for end-to-end checks. */
  allPayments(): Record<string, unknown>[] {
    return [...this.payments.values()].map(render);
  }

  // ---- the customer's and the banks' side (test control) ----

  /**
   * The customer pays. With `preliminary`, a 速報 is sent first; the 確報 (`payment.captured`) follows
   * at once, or only on `confirm()` when `holdFinal` is set.
   */
  pay(paymentId: string, o: { preliminary?: boolean; holdFinal?: boolean } = {}): void {
    const p = this.must(paymentId, ['authorized']);
    if (o.preliminary) {
      p.preliminaryPending = true;
      this.emit(PRELIMINARY_PAID_EVENT, p);
      if (o.holdFinal) return this.save();
    }
    this.capture(p);
  }

  /** The 確報 for a payment whose 速報 was sent with `holdFinal`. */
  confirm(paymentId: string): void {
    const p = this.must(paymentId, ['authorized']);
    if (!p.preliminaryPending) throw new Error(`payment ${paymentId} has no preliminary notice to confirm`);
    this.capture(p);
  }

  /** 速報取消: the slip was scanned but the money never taken; the payment still awaits payment. */
  cancelPreliminary(paymentId: string): void {
    const p = this.must(paymentId, ['authorized']);
    // Without an earlier `pay(…, { preliminary: true, holdFinal: true })`, the scan is played here first.
    if (!p.preliminaryPending) this.emit(PRELIMINARY_PAID_EVENT, p);
    p.preliminaryPending = false;
    this.emit(PRELIMINARY_CANCELLED_EVENT, p);
    this.save();
  }

  expire(paymentId: string): void {
    const p = this.must(paymentId, ['authorized']);
    p.status = 'expired';
    p.preliminaryPending = false;
    this.emit('payment.expired', p);
    this.save();
  }

  /** Money arrives for an expired reservation (a late Pay-easy or bank payment): captured after its deadline. */
  payAfterExpiry(paymentId: string): void {
    this.capture(this.must(paymentId, ['expired']));
  }

  /**
   * The bank reports a transfer into a virtual account. It captures the bank-transfer payment that owns the
   * account (awaiting or expired); a transfer to an account no payment owns yields no event and returns undefined.
   */
  bankTransfer(t: { virtualAccount: string; amount: number; payerKana: string }): string | undefined {
    const p = [...this.payments.values()].find((x) => x.payment_details.type === 'bank_transfer'
      && x.payment_details.account_number === t.virtualAccount && (x.status === 'authorized' || x.status === 'expired'));
    if (!p) {
      this.counters.unmatchedTransfers++;
      return undefined;
    }
    p.payment_details.payer_name_kana = t.payerKana;
    if (t.amount !== p.total) p.payment_details.transferred_amount = t.amount;
    this.capture(p);
    return p.id;
  }

  refund(paymentId: string): void {
    const p = this.must(paymentId, ['captured']);
    p.status = 'refunded';
    p.amount_refunded = p.amount;
    this.emit('payment.refunded', p);
    this.save();
  }

  /** Refund requests and disbursements not settled yet. */
  pendingPayouts(): { refundRequests: SimRefundRequest[]; disbursements: SimDisbursement[] } {
    return {
      refundRequests: [...this.payments.values()].flatMap((p) => p.refund_requests.filter((r) => r.status === 'pending')).map((r) => structuredClone(r)),
      disbursements: [...this.disbursements.values()].filter((d) => d.status === 'pending').map((d) => structuredClone(d)),
    };
  }

  /**
   * KOMOJU carries out (or refuses) the pending payouts: refund requests become completed (the payment
   * refunded, `payment.refunded` sent when it is refunded in full) or rejected (a wrong bank account);
   * disbursements paid or failed. Returns how many it settled.
   */
  settlePayouts(outcome: 'completed' | 'rejected'): number {
    let n = 0;
    const now = this.now().toISOString();
    for (const p of this.payments.values()) {
      for (const r of p.refund_requests) {
        if (r.status !== 'pending') continue;
        r.status = outcome;
        n++;
        if (outcome === 'completed') {
          p.amount_refunded += r.amount;
          if (p.amount_refunded >= p.total) {
            p.status = 'refunded';
            this.emit('payment.refunded', p);
          }
        }
      }
    }
    for (const d of this.disbursements.values()) {
      if (d.status !== 'pending') continue;
      d.status = outcome === 'completed' ? 'paid' : 'failed';
      d.error = outcome === 'completed' ? null : 'the bank refused the transfer: account not found';
      d.last_updated_at = now;
      n++;
    }
    if (n > 0) this.save();
    return n;
  }

  private settleLater(): void {
    const after = this.opts.settlePayoutsAfterMs;
    if (after === undefined) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.settlePayouts('completed');
    }, after);
    timer.unref();
    this.timers.add(timer);
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    if (this.faults.latencyMs > 0) await sleep(Math.floor(this.faultRand() * this.faults.latencyMs));
    if (req.headers.authorization !== `Basic ${Buffer.from(`${this.opts.secretKey}:`).toString('base64')}`) {
      return this.send(res, apiError(401, 'unauthorized', 'User authorization failed'));
    }
    const control = CONTROL_ROUTE.exec(new URL(req.url ?? '/', 'http://sim').pathname);
    if (control && req.method === 'POST') return this.send(res, this.control(decodeURIComponent(control[1]!), control[2]!, raw));
    if (this.roll(this.faults.error500)) {
      this.counters.error500++;
      return this.send(res, apiError(500, 'internal_server_error', 'Something went wrong on our side'));
    }
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname.replace(/\/+$/, '');
    const notFound = () => this.send(res, apiError(404, 'not_found', 'The requested resource could not be found'));
    let run: () => ApiReply;
    const d = /^\/api\/v1\/disbursements(?:\/([^/]+))?$/.exec(path);
    if (d) {
      const [, id] = d;
      if (req.method === 'GET' && !id) return this.send(res, this.listDisbursements(url.searchParams));
      if (req.method === 'GET' && id) {
        const x = this.disbursements.get(decodeURIComponent(id));
        return this.send(res, x ? { status: 200, body: structuredClone(x) } : apiError(404, 'not_found', 'The requested resource could not be found'));
      }
      if (req.method !== 'POST' || id) return notFound();
      run = () => this.disburse(raw);
    } else {
      const m = /^\/api\/v1\/payments(?:\/([^/]+))?(?:\/(cancel|refund_request))?$/.exec(path);
      if (!m) return notFound();
      const [, id, action] = m;
      if (req.method === 'GET' && !id) return this.send(res, this.list(url.searchParams));
      if (req.method === 'GET' && id && !action) {
        const p = this.payments.get(decodeURIComponent(id));
        return this.send(res, p ? { status: 200, body: render(p) } : apiError(404, 'not_found', 'The requested resource could not be found'));
      }
      if (req.method !== 'POST' || (id && !action) || (!id && action)) return notFound();
      run = () => (!id ? this.create(raw) : action === 'cancel' ? this.cancel(decodeURIComponent(id)) : this.refundRequest(decodeURIComponent(id), raw));
    }
    const key = req.headers['x-komoju-idempotency'];
    let reply: ApiReply;
    if (typeof key === 'string' && key.length > 0) {
      const scoped = `${req.method} ${path} ${key}`;
      const seen = this.idempotency.get(scoped);
      if (seen === 'in_flight') return this.send(res, apiError(409, 'conflict', 'A request with this idempotency key is in progress'));
      if (seen) {
        this.counters.idempotentReplays++;
        return this.send(res, seen);
      }
      this.idempotency.set(scoped, 'in_flight');
      reply = run();
      this.idempotency.set(scoped, reply);
    } else {
      reply = run();
    }
    this.save();
    if (this.roll(this.faults.timeoutAfterSuccess)) {
      // Done and remembered, but the answer never leaves: the caller can only time out.
      this.counters.timeouts++;
      this.hanging.add(res);
      res.once('close', () => this.hanging.delete(res));
      return;
    }
    this.send(res, reply);
  }

  /** The control routes: what a customer or bank does, played on request (`seigo sim pay`). Faults do not apply. */
  private control(id: string, action: string, raw: string): ApiReply {
    if (!this.payments.has(id)) return apiError(404, 'not_found', `no payment ${id}`);
    const o = parseObject(raw || '{}') ?? {};
    try {
      if (action === 'pay') this.pay(id, { preliminary: o.preliminary === true, holdFinal: o.hold_final === true });
      else if (action === 'confirm') this.confirm(id);
      else if (action === 'cancel-preliminary') this.cancelPreliminary(id);
      else if (action === 'expire') this.expire(id);
      else this.payAfterExpiry(id);
    } catch (e) {
      return apiError(422, 'invalid_payment_status', (e as Error).message);
    }
    return { status: 200, body: render(this.payments.get(id)!) };
  }

  private create(raw: string): ApiReply {
    let b: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      b = parsed as Record<string, unknown>;
    } catch {
      return apiError(400, 'bad_request', 'The request body must be a JSON object');
    }
    if (b.amount === undefined) return apiError(400, 'missing_parameter', 'A required parameter (amount) is missing', 'amount');
    if (!Number.isSafeInteger(b.amount) || (b.amount as number) <= 0) return apiError(422, 'invalid_parameter', 'amount must be a positive integer', 'amount');
    const amount = b.amount as number;
    if (b.currency !== 'JPY') return apiError(422, 'invalid_currency', 'currency must be JPY for this payment method', 'currency');
    const d = (typeof b.payment_details === 'object' && b.payment_details !== null ? b.payment_details : {}) as Record<string, unknown>;
    if (typeof d.email !== 'string' || !d.email.includes('@')) return apiError(400, 'missing_parameter', 'A required parameter (payment_details[email]) is missing', 'payment_details[email]');
    const digits = (n: number) => Array.from({ length: n }, () => Math.floor(this.idRand() * 10)).join('');
    let details: Record<string, unknown>;
    switch (d.type) {
      case 'konbini': {
        if (typeof d.store !== 'string' || !(KONBINI_STORES as readonly string[]).includes(d.store)) {
          return apiError(422, 'invalid_parameter', 'payment_details[store] is not a supported convenience store', 'payment_details[store]');
        }
        if (amount > KONBINI_LIMIT) return apiError(422, 'invalid_parameter', `amount exceeds the konbini limit of ${KONBINI_LIMIT}`, 'amount');
        details = { type: 'konbini', email: d.email, store: d.store, receipt: digits(11), confirmation_code: d.store === 'seven-eleven' ? null : digits(10), instructions_url: '' };
        break;
      }
      case 'pay_easy':
        if (amount > PAY_EASY_LIMIT) return apiError(422, 'invalid_parameter', `amount exceeds the Pay-easy limit of ${PAY_EASY_LIMIT}`, 'amount');
        details = { type: 'pay_easy', email: d.email, bank_id: '58091', customer_id: digits(20), confirmation_id: digits(6), instructions_url: '' };
        break;
      case 'bank_transfer':
        details = {
          type: 'bank_transfer', email: d.email, order_id: digits(8), bank_name: 'シミュレーション銀行', account_branch_name: '本店',
          account_type: '普通', account_number: digits(7), account_name: 'コモジユ', instructions_url: '',
        };
        break;
      default:
        return apiError(422, 'invalid_payment_type', 'payment_details[type] must be konbini, pay_easy or bank_transfer here', 'payment_details[type]');
    }
    const id = Array.from({ length: 25 }, () => '0123456789abcdefghijklmnopqrstuvwxyz'[Math.floor(this.idRand() * 36)]).join('');
    details.instructions_url = `https://komoju.com/en/instructions/${id}`;
    const now = this.now();
    const p: SimPayment = {
      id, resource: 'payment', status: 'authorized', amount, tax: 0, total: amount, currency: 'JPY',
      payment_deadline: deadline(now, this.opts.paymentWindowDays ?? 3), payment_details: details, payment_method_fee: 0,
      captured_at: null, external_order_num: typeof b.external_order_num === 'string' ? b.external_order_num : null,
      metadata: typeof b.metadata === 'object' && b.metadata !== null ? b.metadata as Record<string, unknown> : {},
      created_at: now.toISOString(), amount_refunded: 0, refunds: [], refund_requests: [], preliminaryPending: false,
    };
    this.payments.set(id, p);
    if (p.external_order_num !== null && !this.byOrder.has(p.external_order_num)) this.byOrder.set(p.external_order_num, id);
    this.counters.created++;
    // KOMOJU announces the reservation ("authorized": awaiting the customer's cash) as it creates it.
    this.emit('payment.authorized', p);
    return { status: 200, body: render(p) };
  }

  private cancel(id: string): ApiReply {
    const p = this.payments.get(id);
    if (!p) return apiError(404, 'not_found', 'The requested resource could not be found');
    if (p.status !== 'authorized' && p.status !== 'pending') return apiError(422, 'invalid_payment_status', `a ${p.status} payment cannot be cancelled`);
    p.status = 'cancelled';
    p.preliminaryPending = false;
    this.counters.cancelled++;
    this.emit('payment.cancelled', p);
    return { status: 200, body: render(p) };
  }

  private list(q: URLSearchParams): ApiReply {
    const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
    const perPage = Math.min(100, Math.max(1, Number(q.get('per_page') ?? 10) || 10));
    const start = q.get('start_time') ? Date.parse(q.get('start_time')!) : -Infinity;
    const end = q.get('end_time') ? Date.parse(q.get('end_time')!) : Infinity;
    const rows = [...this.payments.values()].filter((p) => {
      const t = Date.parse(p.created_at);
      return t >= start && t <= end
        && (!q.has('external_order_num') || p.external_order_num === q.get('external_order_num'))
        && (!q.has('status') || p.status === q.get('status'))
        && (!q.has('currency') || p.currency === q.get('currency'));
    });
    const lastPage = Math.ceil(rows.length / perPage);
    return {
      status: 200,
      body: { resource: 'list', total: rows.length, page, per_page: perPage, last_page: lastPage, data: rows.slice((page - 1) * perPage, page * perPage).map(render) },
    };
  }

  private refundRequest(id: string, raw: string): ApiReply {
    const p = this.payments.get(id);
    if (!p) return apiError(404, 'not_found', 'The requested resource could not be found');
    const b = parseObject(raw);
    if (!b) return apiError(400, 'bad_request', 'The request body must be a JSON object');
    for (const k of ['amount', 'customer_name', 'bank_name', 'branch_number', 'account_type', 'account_number', 'include_payment_method_fee']) {
      if (b[k] === undefined || b[k] === null) return apiError(400, 'missing_parameter', `A required parameter (${k}) is missing`, k);
    }
    const amount = Number(b.amount);
    if (!Number.isSafeInteger(amount) || amount <= 0) return apiError(422, 'invalid_parameter', 'amount must be a positive integer', 'amount');
    if (!['normal', 'checking', 'savings'].includes(String(b.account_type))) return apiError(422, 'invalid_parameter', 'account_type must be normal, checking or savings', 'account_type');
    if (!/^\d{3}$/.test(String(b.branch_number))) return apiError(422, 'invalid_parameter', 'branch_number must be 3 digits', 'branch_number');
    if (!/^\d{7}$/.test(String(b.account_number))) return apiError(422, 'invalid_parameter', 'account_number must be 7 digits', 'account_number');
    if (b.bank_code != null && !/^\d{4}$/.test(String(b.bank_code))) return apiError(422, 'invalid_parameter', 'bank_code must be 4 digits', 'bank_code');
    if (!/^[\uFF61-\uFF9F0-9A-Z ().,\-/]+$/.test(String(b.customer_name))) return apiError(422, 'invalid_parameter', 'customer_name must be half-width katakana', 'customer_name');
    if (p.status !== 'captured') return apiError(422, 'invalid_payment_status', `a ${p.status} payment cannot be refunded`);
    // Every request not rejected counts against what is left, completed or still pending.
    const requested = p.refund_requests.filter((r) => r.status !== 'rejected').reduce((s, r) => s + r.amount, 0);
    if (amount > p.total - requested) return apiError(422, 'invalid_parameter', 'amount exceeds what is left to refund on this payment', 'amount');
    this.counters.refundRequests++;
    p.refund_requests.push({
      id: `refreq${this.randomId(19)}`, payment: p.id, amount, customer_name: String(b.customer_name), bank_name: String(b.bank_name),
      bank_code: b.bank_code == null ? null : String(b.bank_code), branch_name: b.branch_name == null ? null : String(b.branch_name),
      branch_number: String(b.branch_number), account_type: String(b.account_type), account_number: String(b.account_number),
      include_payment_method_fee: b.include_payment_method_fee === true, description: typeof b.description === 'string' ? b.description : null,
      status: 'pending', created_at: this.now().toISOString(),
    });
    this.settleLater();
    return { status: 200, body: render(p) };
  }

  private disburse(raw: string): ApiReply {
    const b = parseObject(raw);
    if (!b) return apiError(400, 'bad_request', 'The request body must be a JSON object');
    for (const k of ['amount', 'currency', 'account_number', 'account_type', 'account_name_kana', 'bank_code', 'branch_code']) {
      if (b[k] === undefined || b[k] === null) return apiError(400, 'missing_parameter', `A required parameter (${k}) is missing`, k);
    }
    const amount = Number(b.amount);
    if (!Number.isSafeInteger(amount) || amount <= 0) return apiError(422, 'invalid_parameter', 'amount must be a positive integer', 'amount');
    if (b.currency !== 'JPY') return apiError(422, 'invalid_currency', 'disbursements are in JPY', 'currency');
    if (!/^\d{4}$/.test(String(b.bank_code)) || !/^\d{3}$/.test(String(b.branch_code)) || !/^\d{7}$/.test(String(b.account_number))) {
      return apiError(422, 'invalid_parameter', 'bank_code (4 digits), branch_code (3) and account_number (7) are required', 'account_number');
    }
    const now = this.now().toISOString();
    const x: SimDisbursement = {
      id: this.randomId(25), resource: 'disbursement', currency: 'JPY', amount, fee: this.opts.disbursementFee ?? 0, fee_tax: 0, status: 'pending',
      bank_code: String(b.bank_code), branch_code: String(b.branch_code), account_type: String(b.account_type), account_number: String(b.account_number),
      account_name_kana: String(b.account_name_kana), error: null, external_id: typeof b.external_id === 'string' ? b.external_id : null,
      created_at: now, last_updated_at: now,
    };
    this.disbursements.set(x.id, x);
    this.counters.disbursements++;
    this.settleLater();
    return { status: 200, body: structuredClone(x) };
  }

  private listDisbursements(q: URLSearchParams): ApiReply {
    const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
    const perPage = Math.min(100, Math.max(1, Number(q.get('per_page') ?? 10) || 10));
    const start = q.get('start_time') ? Date.parse(q.get('start_time')!) : -Infinity;
    const end = q.get('end_time') ? Date.parse(q.get('end_time')!) : Infinity;
    const rows = [...this.disbursements.values()].filter((x) => Date.parse(x.created_at) >= start && Date.parse(x.created_at) <= end);
    return {
      status: 200,
      body: { resource: 'list', total: rows.length, page, per_page: perPage, last_page: Math.ceil(rows.length / perPage), data: rows.slice((page - 1) * perPage, page * perPage).map((x) => structuredClone(x)) },
    };
  }

  private randomId(n: number): string {
    return Array.from({ length: n }, () => '0123456789abcdefghijklmnopqrstuvwxyz'[Math.floor(this.idRand() * 36)]).join('');
  }

  private send(res: ServerResponse, r: ApiReply): void {
    const body = JSON.stringify(r.body);
    res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  // ---- webhooks ----

  private capture(p: SimPayment): void {
    p.status = 'captured';
    p.captured_at = this.now().toISOString();
    p.preliminaryPending = false;
    this.emit('payment.captured', p);
    this.save();
  }

  private emit(type: string, p: SimPayment): void {
    const event: KomojuEvent = { id: randomUUID(), type, resource: 'event', data: render(p), created_at: this.now().toISOString() };
    this.events.push(event);
    this.counters.webhooksEmitted++;
    if (this.roll(this.faults.dropWebhook)) {
      this.counters.webhooksDropped++;
      this.droppedEventIds.add(event.id);
      return;
    }
    if (this.roll(this.faults.reorderWebhooks)) {
      this.counters.webhooksReordered++;
      this.held.push(event);
      return;
    }
    this.dispatch(event);
    this.releaseHeld();
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const e of held) this.dispatch(e);
  }

  private dispatch(event: KomojuEvent): void {
    if (this.faults.stormCopies >= 1) {
      const body = JSON.stringify(event);
      const copies = 1 + Math.floor(this.faultRand() * this.faults.stormCopies);
      this.counters.webhooksDuplicated += copies - 1;
      for (let i = 0; i < copies; i++) {
        const delayMs = Math.floor(this.faultRand() * this.faults.stormSpreadMs);
        const p: Promise<void> = sleep(delayMs).then(() => this.deliver(event.type, body)).finally(() => this.deliveries.delete(p));
        this.deliveries.add(p);
      }
      return;
    }
    const times = this.roll(this.faults.duplicateWebhook) ? 2 : 1;
    if (times === 2) this.counters.webhooksDuplicated++;
    const body = JSON.stringify(event);
    for (let i = 0; i < times; i++) {
      // One delivery at a time, retries included, so webhooks arrive in the order they were sent unless a
      // fault says otherwise. `deliver` never rejects.
      const p: Promise<void> = this.chain.then(() => this.deliver(event.type, body)).finally(() => this.deliveries.delete(p));
      this.chain = p;
      this.deliveries.add(p);
    }
  }

  private async deliver(type: string, body: string): Promise<void> {
    const url = this.webhookUrl;
    if (!url) return;
    const attempts = this.opts.webhookAttempts ?? 5;
    let delay = this.opts.webhookRetryDelayMs ?? 20;
    const deliveryId = randomUUID();
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.counters.webhookAttempts++;
      try {
        const res = await request(url, {
          method: 'POST', body,
          headers: {
            'content-type': 'application/json', 'user-agent': 'Komoju-Webhook', 'x-komoju-id': deliveryId,
            'x-komoju-event': type, 'x-komoju-signature': sign(this.opts.webhookSecret, body),
          },
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          this.counters.webhooksDelivered++;
          return;
        }
      } catch {
        // Unreachable endpoint: retried like a non-2xx answer.
      }
      if (attempt < attempts) {
        await sleep(delay);
        delay *= 2;
      }
    }
    this.counters.webhooksFailed++;
  }

  private roll(rate: number): boolean {
    return rate > 0 && this.faultRand() < rate;
  }

  private must(id: string, allowed: readonly PaymentStatus[]): SimPayment {
    const p = this.payments.get(id);
    if (!p) throw new Error(`no payment ${id}`);
    if (!allowed.includes(p.status)) throw new Error(`payment ${id} is ${p.status}, not ${allowed.join(' or ')}`);
    return p;
  }
}

function render(p: SimPayment): Record<string, unknown> {
  const { preliminaryPending: _, ...wire } = p;
  return structuredClone(wire);
}

function parseObject(raw: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(raw);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

function stripSeed(f: KomojuFaults & { seed?: number }): KomojuFaults {
  const { seed: _, ...rest } = f;
  return rest;
}

/** 23:59:59 JST (14:59:59Z) `days` after `now`, the way konbini deadlines are usually set. */
function deadline(now: Date, days: number): string {
  const jst = new Date(now.getTime() + 9 * 3_600_000 + days * 86_400_000);
  return new Date(Date.UTC(jst.getUTCFullYear(), jst.getUTCMonth(), jst.getUTCDate(), 14, 59, 59)).toISOString();
}
