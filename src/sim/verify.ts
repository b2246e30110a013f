// The end-to-end invariants, computed from the database and from the simulators' own records
// (what Stripe, KOMOJU and the bank consider paid), never from what the driver believes happened.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { World } from './world.ts';
import { NOTICE_SUBSCRIPTION } from './world.ts';

/**
 * SQL: an open case (not resolved, not won't-fix) names the record (`type`, the id expression `id`) as
 * its subject or among its related records. A closed case excuses nothing: whoever closed it left the
 * record as it is, so the record is still a broken promise.
 */
const hasCase = (type: string, id: string) => `EXISTS (SELECT 1 FROM cases c WHERE c.closed_at IS NULL AND ((c.subject_type = '${type}' AND c.subject_id = ${id}::text)
  OR c.related @> jsonb_build_array(jsonb_build_object('type', '${type}', 'id', ${id}::text))))`;

/** Work still under way in seigo (an unknown operation or deposit a case hands to a person is no longer seigo's to finish, as in the figures): a run is quiet when all of it is zero. */
export interface Backlog {
  inbox: number;
  operations: number;
  deposits: number;
  deliveries: number;
  refunds: number;
}

export async function backlog(pool: pg.Pool): Promise<Backlog> {
  const r = await pool.query<Backlog>(`
    SELECT (SELECT count(*) FROM inbox WHERE status = 'pending')::int AS inbox,
           (SELECT count(*) FROM operations o WHERE status IN ('pending', 'sending') OR (status = 'unknown' AND NOT ${hasCase('operation', 'o.id')}))::int AS operations,
           (SELECT count(*) FROM deposits d WHERE status IN ('pending', 'processing') OR (status = 'unknown' AND NOT ${hasCase('deposit', 'd.id')}))::int AS deposits,
           (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending'))::int AS deliveries,
           -- A payout the provider took (sent) is work under way too, until it settles or an open case has it.
           (SELECT count(*) FROM deposit_refunds r WHERE status = 'pending' OR (status = 'sent'
              AND NOT ${hasCase('deposit', 'r.source_id')} AND NOT ${hasCase('bank_transfer', 'r.source_id')}))::int AS refunds`);
  return r.rows[0]!;
}

/**
 * Waits until the simulators have delivered everything and seigo has nothing pending, processing or
 * unknown (three quiet polls in a row), or `timeoutMs` passes. Returns the last backlog seen.
 */
export async function waitUntilQuiet(w: World, timeoutMs: number): Promise<{ quiet: boolean; backlog: Backlog; waitedMs: number }> {
  const start = Date.now();
  let quietPolls = 0;
  let last: Backlog;
  for (;;) {
    await Promise.all([w.stripe.idle(), w.komoju.idle()]);
    last = await backlog(w.pool);
    quietPolls = last.inbox + last.operations + last.deposits + last.deliveries + last.refunds === 0 ? quietPolls + 1 : 0;
    if (quietPolls >= 3) return { quiet: true, backlog: last, waitedMs: Date.now() - start };
    if (Date.now() - start > timeoutMs) return { quiet: false, backlog: last, waitedMs: Date.now() - start };
    await sleep(300);
  }
}

export interface Figures {
  /** Payments the simulators consider paid (Stripe succeeded, KOMOJU captured, bank transfers reported and not cancelled). */
  paid: number;
  /** …of which booked exactly once, for their full amount (wallet, escrow or suspense). */
  credited: number;
  /** Paid, and booked nowhere. */
  lost: number;
  /** …of which the provider dropped the paid notice: only reconciliation can bring those in. */
  lost_notice_dropped: number;
  /** More than one live (unreversed) credit for one payment. */
  double_credits: number;
  /** Booked once, but not for the amount paid. */
  misbooked: number;
  /** A live credit for something no simulator considers paid (a reversal is no credit). */
  phantom_credits: number;
  /** A card charged more than once at Stripe for one deposit. */
  double_charges: number;
  /**
   * Deposits the wallet backend was never told about: a request whose process died was retried with
   * the same Idempotency-Key and ran again, making a second deposit. `charged`: of those, how many
   * took the customer's money (the customer paid twice for one request).
   */
  orphan_deposits: { total: number; charged: number; held: number };
  /** Σ of every ledger entry (must be "0"). */
  ledger_sum: string;
  /** Ledger transactions whose entries do not sum to zero in some currency (each must, not only the whole ledger). */
  unbalanced_transactions: number;
  /** Accounts whose balance rows differ from the sum of their entries, or whose incoming holds differ from their active holds. */
  balance_mismatches: number;
  /** Accounts whose pending-out differs from their active outgoing holds. */
  pending_out_mismatches: number;
  /** Ledger transactions reversed more than once. */
  double_reversals: number;
  /** Wallets whose posted + incoming holds exceed their limit. */
  limit_breaches: number;
  /** Operations and deposits still `unknown` with no open case about them (a closed case excuses nothing). */
  unknown_unresolved: number;
  /** …and those an open case hands to a person. */
  unknown_with_case: number;
  /** Yen in escrow (over-limit money waiting for a refund) and in suspense (restricted users, unmatched transfers). */
  escrowed: string;
  suspense: string;
  /** Refunds of escrowed money started (payouts), and how they ended. */
  refunds_started: number;
  /** `sent`: accepted by the provider, not known to be settled yet; `in_flight_without_case`: pending or sent at the end with no open case. */
  refunds: { succeeded: number; failed: number; sent: number; refunded: string; in_flight_without_case: number };
  /** User notices: delivered and acknowledged by the wallet backend, dead with a case, or lost. */
  deliveries: { total: number; acknowledged: number; redelivered: number; dead_with_case: number; lost: number };
  /** Every subscription's deliveries: delivered, dead with an open case, cancelled (target changed), open, or lost. */
  subscriptions: Record<string, SubscriptionDeliveries>;
  /** The bank's cancellations (取消) and what seigo did with them; see `cancellationFigures`. */
  cancellations: CancellationFigures;
  /** Cases opened during the run, by cause. */
  cases: Record<string, number>;
  /** Announced bank transfers (POST /v1/deposits, bank_transfer) by status: paid by a transfer (succeeded), still awaiting, expired. */
  bank_transfer_deposits: Record<string, number>;
  /** Work left: operations pending/sending, deposits pending/processing, inbox rows pending/failed, deliveries pending/sending. */
  stuck: { operations: number; deposits: number; inbox: number; inbox_failed: number; deliveries: number; refunds: number };
  /** The lost, doubly credited and phantom payments (the first 20), with seigo's record of each. */
  broken: Record<string, unknown>[];
  /** Operations and deposits not final at the end (the first 20 of each), with their history. */
  unsettled: Record<string, unknown>[];
}

export interface SubscriptionDeliveries { total: number; delivered: number; dead_with_case: number; cancelled: number; open: number; lost: number }

export interface CancellationFigures {
  /** Cancellations the bank sent of transfers it had reported. */
  sent: number;
  /** …whose transfer seigo marked cancelled by that record, its booking reversed exactly once. */
  reversed_once: number;
  /** …not reversed (the transfer still live, or not marked cancelled). */
  not_reversed: number;
  /** Cancelled transfers whose reversal took the wallet below zero (the user had spent it), and of those how many have no open case. */
  shortfalls: number;
  shortfall_without_case: number;
  /** A shortfall larger than what the transfer credited to the wallet. */
  shortfall_over_credit: number;
  /** Wallets below zero that no cancelled transfer's shortfall explains. */
  negative_wallets_unexplained: number;
  /** Cancellations of transfers the bank never reported: booked once against suspense, with an open case. */
  unknown_sent: number;
  unknown_booked: number;
}

/** What the outside world considers paid, keyed as credits are, and the bank's cancellations. */
export interface OutsideRecord {
  paid: Map<string, bigint>;
  /** `cancels`: the external id of the transfer withdrawn; null when the bank never reported it. */
  bankCancellations: readonly { externalId: string; cancels: string | null }[];
}

/** Live credits by payment key: credit postings not reversed since; a reversal or a cancellation's own posting is no credit. */
export async function liveCredits(pool: pg.Pool): Promise<Map<string, { n: number; booked: bigint }>> {
  // Deposit credits carry `deposit:<id>:credit[:n]`, bank transfers `bank_transfer:<external id>`;
  // `booked` is what reached the user's side.
  const credits = await pool.query<{ key: string; n: number; booked: string }>(`
    SELECT CASE WHEN t.idempotency_key LIKE 'deposit:%' THEN 'deposit:' || split_part(t.idempotency_key, ':', 2) ELSE t.idempotency_key END AS key,
           count(*)::int AS n,
           coalesce(sum((SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
                         WHERE e.transaction_id = t.id AND a.kind IN ('wallet', 'escrow', 'suspense'))), 0)::text AS booked
    FROM ledger_transactions t
    WHERE (t.idempotency_key ~ '^deposit:[0-9a-f-]{36}:credit(:[0-9]+)?$' OR t.idempotency_key LIKE 'bank_transfer:%')
      AND t.reverses IS NULL AND t.kind <> 'bank_transfer_unmatched_cancel'
      AND NOT EXISTS (SELECT 1 FROM ledger_transactions r WHERE r.reverses = t.id)
    GROUP BY 1`);
  return new Map(credits.rows.map((c) => [c.key, { n: c.n, booked: BigInt(c.booked) }]));
}

/** Compares what was paid with what is booked: each paid payment booked once for its amount, nothing booked that nobody paid. */
export function compareCredits(paid: ReadonlyMap<string, bigint>, live: ReadonlyMap<string, { n: number; booked: bigint }>) {
  let credited = 0, misbooked = 0;
  const lost: string[] = [], double: string[] = [], phantom: string[] = [];
  for (const [key, amount] of paid) {
    const c = live.get(key);
    if (!c) lost.push(key);
    else if (c.n > 1) double.push(key);
    else if (c.booked !== amount) misbooked++;
    else credited++;
  }
  for (const key of live.keys()) if (!paid.has(key)) phantom.push(key);
  return { credited, misbooked, lost, double, phantom };
}

/** What the outside world considers paid: Stripe's succeeded intents, KOMOJU's captured payments, the bank's transfers not cancelled. */
function outsideRecord(w: World): OutsideRecord & { charges: Map<string, number> } {
  const paid = new Map<string, bigint>();
  const charges = new Map<string, number>();
  for (const pi of w.stripe.paymentIntents()) {
    const depositId = (pi.metadata as Record<string, string> | undefined)?.deposit_id;
    if (pi.status !== 'succeeded' || !depositId) continue;
    charges.set(depositId, (charges.get(depositId) ?? 0) + 1);
    paid.set(`deposit:${depositId}`, BigInt(pi.amount as number));
  }
  for (const p of w.komoju.allPayments()) {
    if ((p.status === 'captured' || p.status === 'refunded') && typeof p.external_order_num === 'string') {
      const details = p.payment_details as Record<string, unknown> | undefined;
      const amount = typeof details?.transferred_amount === 'number' ? details.transferred_amount : (p.total ?? p.amount) as number;
      paid.set(`deposit:${p.external_order_num}`, BigInt(amount));
    }
  }
  const cancelled = new Set(w.bank.cancellations.map((c) => c.cancels));
  for (const t of w.bank.reported) if (!cancelled.has(t.externalId)) paid.set(`bank_transfer:${t.externalId}`, t.amount);
  return { paid, charges, bankCancellations: w.bank.cancellations };
}

/** Computes every figure. */
export async function computeFigures(w: World): Promise<Figures> {
  const pool = w.pool;
  const outside = outsideRecord(w);
  const { credited, misbooked, lost, double, phantom } = compareCredits(outside.paid, await liveCredits(pool));
  // A paid notice KOMOJU never sent (the drop fault) reaches seigo only through reconciliation.
  const droppedPaidNotice = new Set(w.komoju.events
    .filter((e) => e.type === 'payment.captured' && w.komoju.droppedEventIds.has(e.id))
    .map((e) => `deposit:${String((e.data as { external_order_num?: unknown }).external_order_num)}`));
  const l = await ledgerFigures(pool, w.defaultLimit);
  const s = await workFigures(pool);
  const subs = await deliveryFigures(pool, { subscription: NOTICE_SUBSCRIPTION, acknowledged: w.receiver.acknowledged });
  const notice = subs[NOTICE_SUBSCRIPTION] ?? { total: 0, delivered: 0, dead_with_case: 0, cancelled: 0, open: 0, lost: 0 };
  const orphans = await pool.query<{ total: number; charged: number; held: number }>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE method = 'card' AND status = 'succeeded'))::int AS charged,
            (count(*) FILTER (WHERE hold_id IS NOT NULL))::int AS held
     FROM deposits WHERE NOT (id = ANY($1::uuid[]))
       -- A request the wallet backend gave up on made a deposit it never heard of, which is no double run.
       AND (client_key IS NULL OR NOT (client_key = ANY($2::text[])))`,
    [[...w.walletDeposits], [...w.walletGaveUp].map((k) => `idempotency:wallet:${k}`)]);
  const cases = await pool.query<{ cause: string; n: number }>('SELECT cause, count(*)::int AS n FROM cases GROUP BY cause ORDER BY cause');
  const announced = await pool.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM deposits WHERE method = 'bank_transfer' GROUP BY status ORDER BY status`);
  let redelivered = 0;
  for (const p of w.receiver.processed.values()) redelivered += p.redeliveries;

  return {
    paid: outside.paid.size, credited, lost: lost.length, lost_notice_dropped: lost.filter((k) => droppedPaidNotice.has(k)).length,
    double_credits: double.length, misbooked, phantom_credits: phantom.length,
    double_charges: [...outside.charges.values()].filter((n) => n > 1).length, orphan_deposits: orphans.rows[0]!,
    ...l,
    unknown_unresolved: s.ops_unknown + s.deposits_unknown, unknown_with_case: s.unknown_with_case,
    refunds_started: s.refunds, refunds: { succeeded: s.refunds_succeeded, failed: s.refunds_failed, sent: s.refunds_sent, refunded: s.refunded, in_flight_without_case: s.refunds_unexcused },
    deliveries: { total: notice.total, acknowledged: notice.delivered, redelivered, dead_with_case: notice.dead_with_case, lost: notice.lost },
    subscriptions: subs,
    cancellations: await cancellationFigures(pool, outside.bankCancellations),
    cases: Object.fromEntries(cases.rows.map((c) => [c.cause, c.n])),
    bank_transfer_deposits: Object.fromEntries(announced.rows.map((d) => [d.status, d.n])),
    stuck: { operations: s.ops_stuck, deposits: s.deposits_stuck, inbox: s.inbox, inbox_failed: s.inbox_failed, deliveries: Object.values(subs).reduce((n, x) => n + x.open, 0), refunds: s.refunds_pending },
    broken: await describe(pool, [...lost.map((k) => ['lost', k]), ...double.map((k) => ['double_credit', k]), ...phantom.map((k) => ['phantom_credit', k])] as [string, string][]),
    unsettled: await unsettled(pool),
  };
}

const LEDGER_FIGURES = `
WITH acc AS (
  SELECT a.id, a.kind, a.owner, a.currency,
         (SELECT coalesce(sum(b.posted), 0) FROM ledger_balances b WHERE b.account_id = a.id) AS posted,
         (SELECT coalesce(sum(b.pending_in), 0) FROM ledger_balances b WHERE b.account_id = a.id) AS pending_in,
         (SELECT coalesce(sum(b.pending_out), 0) FROM ledger_balances b WHERE b.account_id = a.id) AS pending_out,
         (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e WHERE e.account_id = a.id) AS entries,
         (SELECT coalesce(sum(h.amount), 0) FROM ledger_holds h WHERE h.account_id = a.id AND h.status = 'active' AND h.direction = 'in') AS holds_in,
         (SELECT coalesce(sum(h.amount), 0) FROM ledger_holds h WHERE h.account_id = a.id AND h.status = 'active' AND h.direction = 'out') AS holds_out
  FROM ledger_accounts a)
SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_entries)::text AS ledger_sum,
       (SELECT count(DISTINCT transaction_id) FROM (SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0) u)::int AS unbalanced_transactions,
       (SELECT count(*) FROM acc WHERE posted <> entries OR pending_in <> holds_in)::int AS balance_mismatches,
       (SELECT count(*) FROM acc WHERE pending_out <> holds_out)::int AS pending_out_mismatches,
       (SELECT count(*) FROM (SELECT 1 FROM ledger_transactions WHERE reverses IS NOT NULL GROUP BY reverses HAVING count(*) > 1) r)::int AS double_reversals,
       (SELECT count(*) FROM acc LEFT JOIN ledger_limits l ON l.owner = acc.owner AND l.currency = acc.currency
         WHERE acc.kind = 'wallet' AND acc.posted + acc.pending_in > coalesce(l."limit", $1::bigint))::int AS limit_breaches,
       (SELECT coalesce(sum(posted), 0) FROM acc WHERE kind = 'escrow')::text AS escrowed,
       (SELECT coalesce(sum(posted), 0) FROM acc WHERE kind = 'suspense')::text AS suspense`;

/** The ledger's own invariants: the sum, each transaction per currency, balances against entries and holds, limits, reversals. */
export async function ledgerFigures(pool: pg.Pool, defaultLimit: number) {
  const r = await pool.query<{
    ledger_sum: string; unbalanced_transactions: number; balance_mismatches: number; pending_out_mismatches: number; double_reversals: number;
    limit_breaches: number; escrowed: string; suspense: string;
  }>(LEDGER_FIGURES, [String(defaultLimit)]);
  return r.rows[0]!;
}

const WORK_FIGURES = `
SELECT (SELECT count(*) FROM operations o WHERE status = 'unknown' AND NOT ${hasCase('operation', 'o.id')})::int AS ops_unknown,
       (SELECT count(*) FROM deposits d WHERE status = 'unknown' AND NOT ${hasCase('deposit', 'd.id')})::int AS deposits_unknown,
       ((SELECT count(*) FROM operations o WHERE status = 'unknown' AND ${hasCase('operation', 'o.id')})
         + (SELECT count(*) FROM deposits d WHERE status = 'unknown' AND ${hasCase('deposit', 'd.id')}))::int AS unknown_with_case,
       (SELECT count(*) FROM operations WHERE status IN ('pending', 'sending'))::int AS ops_stuck,
       (SELECT count(*) FROM deposits WHERE status IN ('pending', 'processing'))::int AS deposits_stuck,
       (SELECT count(*) FROM inbox WHERE status = 'pending')::int AS inbox,
       (SELECT count(*) FROM inbox WHERE status = 'failed')::int AS inbox_failed,
       (SELECT count(*) FROM deposit_refunds)::int AS refunds,
       (SELECT count(*) FROM deposit_refunds WHERE status = 'succeeded')::int AS refunds_succeeded,
       (SELECT count(*) FROM deposit_refunds WHERE status = 'failed')::int AS refunds_failed,
       (SELECT count(*) FROM deposit_refunds WHERE status = 'sent')::int AS refunds_sent,
       (SELECT count(*) FROM deposit_refunds WHERE status = 'pending')::int AS refunds_pending,
       -- A payout still in flight at the end is a broken promise unless an open case hands it to a person.
       (SELECT count(*) FROM deposit_refunds r WHERE r.status IN ('pending', 'sent')
          AND NOT ${hasCase('deposit', 'r.source_id')} AND NOT ${hasCase('bank_transfer', 'r.source_id')}
          AND (r.operation_id IS NULL OR NOT ${hasCase('operation', 'r.operation_id')}))::int AS refunds_unexcused,
       (SELECT coalesce(sum(amount), 0) FROM deposit_refunds WHERE status = 'succeeded')::text AS refunded`;

/** Work seigo has not finished: unknown operations and deposits (with and without an open case), stuck rows, refunds in flight. */
export async function workFigures(pool: pg.Pool) {
  const r = await pool.query<{
    ops_unknown: number; deposits_unknown: number; unknown_with_case: number; ops_stuck: number; deposits_stuck: number; inbox: number; inbox_failed: number;
    refunds: number; refunds_succeeded: number; refunds_failed: number; refunds_sent: number; refunds_pending: number; refunds_unexcused: number; refunded: string;
  }>(WORK_FIGURES);
  return r.rows[0]!;
}

/**
 * Every subscription's deliveries by outcome. For the subscription `notice.subscription` (the wallet
 * backend's HTTP endpoint) "delivered" also needs the receiver's acknowledgement of that delivery id.
 */
export async function deliveryFigures(pool: pg.Pool, notice?: { subscription: string; acknowledged: ReadonlySet<string> }): Promise<Record<string, SubscriptionDeliveries>> {
  const dl = await pool.query<{ name: string; id: string; status: string; has_case: boolean }>(
    `SELECT s.name, d.id, d.status, (d.status = 'dead' AND ${hasCase('delivery', 'd.id')}) AS has_case
     FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id`);
  const out: Record<string, SubscriptionDeliveries> = {};
  for (const d of dl.rows) {
    const f = (out[d.name] ??= { total: 0, delivered: 0, dead_with_case: 0, cancelled: 0, open: 0, lost: 0 });
    f.total++;
    const acknowledged = d.name !== notice?.subscription || notice.acknowledged.has(d.id);
    if (d.status === 'delivered' && acknowledged) f.delivered++;
    else if (d.status === 'dead' && d.has_case) f.dead_with_case++;
    else if (d.status === 'cancelled') f.cancelled++;
    else if (d.status === 'pending' || d.status === 'sending') f.open++;
    else f.lost++;
  }
  return out;
}

const CANCELLED_TRANSFERS = `
SELECT t.external_id, t.status, t.cancelled_by, t.credited::text, t.shortfall::text, t.user_id,
       (SELECT count(*) FROM ledger_transactions r WHERE t.ledger_transaction_id IS NOT NULL AND r.reverses = t.ledger_transaction_id)::int AS reversals,
       t.ledger_transaction_id IS NULL AS unbooked,
       ${hasCase('bank_transfer', 't.external_id')} AS has_case
FROM bank_transfers t WHERE t.external_id = ANY($1::text[])`;

const UNKNOWN_CANCELLATIONS = `
SELECT t.external_id FROM bank_transfers t
WHERE t.external_id = ANY($1::text[]) AND t.status = 'unmatched_cancel' AND t.cancels IS NULL
  AND (SELECT count(*) FROM ledger_transactions l WHERE l.id = t.ledger_transaction_id) = 1
  AND ${hasCase('bank_transfer', 't.external_id')}`;

// A wallet below zero is explained by a cancelled transfer of its owner that left a shortfall.
const NEGATIVE_WALLETS = `
SELECT count(*)::int AS n FROM ledger_accounts a
WHERE a.kind = 'wallet' AND (SELECT coalesce(sum(b.posted), 0) FROM ledger_balances b WHERE b.account_id = a.id) < 0
  AND NOT EXISTS (SELECT 1 FROM bank_transfers t WHERE t.user_id = a.owner AND t.status = 'cancelled' AND t.shortfall > 0)`;

/**
 * The reversal invariants of the bank's cancellations (取消): a cancelled transfer is marked cancelled
 * by that very record and its booking reversed exactly once; a reversal that took the wallet below
 * zero (the user had spent the money) keeps that shortfall, no more than the transfer credited, with
 * an open case; a cancellation of a transfer never reported is booked once against suspense with an
 * open case; and no wallet is below zero for any other reason.
 */
export async function cancellationFigures(pool: pg.Pool, sent: OutsideRecord['bankCancellations']): Promise<CancellationFigures> {
  const known = sent.filter((c) => c.cancels !== null);
  const unknown = sent.filter((c) => c.cancels === null).map((c) => c.externalId);
  const rows = await pool.query<{ external_id: string; status: string; cancelled_by: string | null; credited: string; shortfall: string; reversals: number; unbooked: boolean; has_case: boolean }>(
    CANCELLED_TRANSFERS, [known.map((c) => c.cancels)]);
  const byId = new Map(rows.rows.map((r) => [r.external_id, r]));
  const f: CancellationFigures = {
    sent: known.length, reversed_once: 0, not_reversed: 0, shortfalls: 0, shortfall_without_case: 0, shortfall_over_credit: 0,
    negative_wallets_unexplained: (await pool.query<{ n: number }>(NEGATIVE_WALLETS)).rows[0]!.n,
    unknown_sent: unknown.length, unknown_booked: (await pool.query(UNKNOWN_CANCELLATIONS, [unknown])).rowCount ?? 0,
  };
  for (const c of known) {
    const t = byId.get(c.cancels!);
    if (t?.status === 'cancelled' && t.cancelled_by === c.externalId && (t.unbooked || t.reversals === 1)) f.reversed_once++;
    else f.not_reversed++;
    const shortfall = BigInt(t?.shortfall ?? 0);
    if (shortfall > 0n) {
      f.shortfalls++;
      if (!t!.has_case) f.shortfall_without_case++;
      if (shortfall > BigInt(t!.credited)) f.shortfall_over_credit++;
    }
  }
  return f;
}

/** Operations and deposits still not final (the first 20), with their history: why a run did not settle. */
async function unsettled(pool: pg.Pool): Promise<Record<string, unknown>[]> {
  const ops = await pool.query<{ id: string; provider: string; kind: string; status: string; entity_id: string | null; attempts: number; inquiries: number; next_inquiry_at: Date | null; error_code: string | null; error_message: string | null; deposit_status: string | null }>(
    `SELECT o.id, o.provider, o.kind, o.status, o.entity_id, o.attempts, o.inquiries, o.next_inquiry_at, o.error_code, o.error_message,
            (SELECT d.status FROM deposits d WHERE d.operation_id = o.id) AS deposit_status
     FROM operations o WHERE o.status IN ('pending', 'sending', 'unknown') ORDER BY o.created_at LIMIT 20`);
  const out: Record<string, unknown>[] = [];
  for (const o of ops.rows) {
    const ev = await pool.query<{ at: Date; to_status: string; cause: string }>('SELECT at, to_status, cause FROM operation_events WHERE operation_id = $1 ORDER BY id', [o.id]);
    out.push({ operation: o, history: ev.rows.map((e) => `${e.at.toISOString()} ${e.to_status}: ${e.cause}`) });
  }
  const deps = await pool.query<{ id: string; method: string; status: string; operation_id: string | null }>(
    `SELECT id, method, status, operation_id FROM deposits WHERE status IN ('pending', 'processing', 'unknown') ORDER BY created_at LIMIT 20`);
  for (const d of deps.rows) {
    const ev = await pool.query<{ at: Date; to_status: string; cause: string }>('SELECT at, to_status, cause FROM deposit_events WHERE deposit_id = $1 ORDER BY id', [d.id]);
    out.push({ deposit: d, history: ev.rows.map((e) => `${e.at.toISOString()} ${e.to_status}: ${e.cause}`) });
  }
  const refunds = await pool.query<{ id: string; status: string; route: string; operation_id: string | null; op_status: string | null; op_error: string | null }>(
    `SELECT r.id, r.status, r.route, r.operation_id, o.status AS op_status, o.error_message AS op_error
     FROM deposit_refunds r LEFT JOIN operations o ON o.id = r.operation_id WHERE r.status IN ('pending', 'sent') ORDER BY r.created_at LIMIT 20`);
  for (const r of refunds.rows) {
    const ev = await pool.query<{ at: Date; to_status: string; cause: string }>('SELECT at, to_status, cause FROM deposit_refund_events WHERE refund_id = $1 ORDER BY id', [r.id]);
    out.push({ refund: r, history: ev.rows.map((e) => `${e.at.toISOString()} ${e.to_status}: ${e.cause}`) });
  }
  // Deliveries and notices still under way: a retry scheduled far ahead, a lease nobody renews.
  const deliveries = await pool.query(
    `SELECT d.id, s.name AS subscription, d.target_type, d.status, d.attempts, d.next_attempt_at, d.locked_until, d.last_status_code,
            left(d.last_error, 300) AS last_error, m.topic, d.created_at
     FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN outbox_messages m ON m.id = d.message_id
     WHERE d.status IN ('pending', 'sending') ORDER BY d.next_attempt_at LIMIT 20`);
  for (const d of deliveries.rows) out.push({ delivery: d });
  const inbox = await pool.query(
    `SELECT id, provider, event_id, event_type, attempts, next_attempt_at, left(last_error, 300) AS last_error, received_at
     FROM inbox WHERE status = 'pending' ORDER BY next_attempt_at LIMIT 20`);
  for (const i of inbox.rows) out.push({ inbox: i });
  return out;
}

/** For each broken payment (at most 20): what seigo holds about it, to start the investigation from. */
async function describe(pool: pg.Pool, items: [string, string][]): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const [what, key] of items.slice(0, 20)) {
    const [kind, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    if (kind !== 'deposit') {
      out.push({ what, key });
      continue;
    }
    const d = await pool.query<{ method: string; status: string; provider_payment_id: string | null }>(
      'SELECT method, status, provider_payment_id FROM deposits WHERE id = $1', [id]);
    const ev = await pool.query<{ to_status: string; cause: string }>('SELECT to_status, cause FROM deposit_events WHERE deposit_id = $1 ORDER BY id', [id]);
    const pid = d.rows[0]?.provider_payment_id;
    const inbox = pid ? await pool.query<{ event_type: string | null; status: string }>(
      'SELECT event_type, status FROM inbox WHERE entity_id = $1 ORDER BY received_at', [pid]) : { rows: [] };
    out.push({
      what, key, method: d.rows[0]?.method, status: d.rows[0]?.status, provider_payment_id: pid,
      history: ev.rows.map((e) => `${e.to_status}: ${e.cause}`), notices_received: inbox.rows.map((r) => `${r.event_type ?? '?'} (${r.status})`),
    });
  }
  return out;
}

/** The broken invariants, each as a sentence; empty when the run kept every promise. */
export function violations(f: Figures, quiet: boolean): string[] {
  const v: string[] = [];
  if (!quiet) v.push('the system did not quiesce in time');
  if (f.lost > 0) v.push(`${f.lost} paid payments are booked nowhere`);
  if (f.double_credits > 0) v.push(`${f.double_credits} payments are credited more than once`);
  if (f.misbooked > 0) v.push(`${f.misbooked} payments are booked for a different amount than paid`);
  if (f.phantom_credits > 0) v.push(`${f.phantom_credits} credits for payments nobody made`);
  if (f.double_charges > 0) v.push(`${f.double_charges} deposits charged more than once`);
  if (f.orphan_deposits.total > 0) v.push(`${f.orphan_deposits.total} deposits were made by a retried request that had already made one (${f.orphan_deposits.charged} charged a card)`);
  if (f.ledger_sum !== '0') v.push(`the ledger sums to ${f.ledger_sum}, not 0`);
  if (f.unbalanced_transactions > 0) v.push(`${f.unbalanced_transactions} ledger transactions do not balance in some currency`);
  if (f.balance_mismatches > 0) v.push(`${f.balance_mismatches} accounts' balances differ from their entries or holds`);
  if (f.pending_out_mismatches > 0) v.push(`${f.pending_out_mismatches} accounts' pending-out differs from their active outgoing holds`);
  if (f.double_reversals > 0) v.push(`${f.double_reversals} ledger transactions are reversed more than once`);
  if (f.limit_breaches > 0) v.push(`${f.limit_breaches} wallets are over their limit`);
  if (f.unknown_unresolved > 0) v.push(`${f.unknown_unresolved} operations or deposits are still unknown, with no open case`);
  if (f.refunds.in_flight_without_case > 0) v.push(`${f.refunds.in_flight_without_case} refunds or payouts are still in flight, with no open case`);
  if (f.deliveries.lost > 0) v.push(`${f.deliveries.lost} user notices were neither acknowledged by the wallet backend nor dead with a case`);
  for (const [name, s] of Object.entries(f.subscriptions)) {
    if (s.lost > 0) v.push(`subscription ${name}: ${s.lost} deliveries neither delivered nor dead with an open case`);
  }
  const c = f.cancellations;
  if (c.not_reversed > 0) v.push(`${c.not_reversed} of ${c.sent} transfers the bank cancelled were not reversed exactly once`);
  if (c.shortfall_without_case > 0) v.push(`${c.shortfall_without_case} cancelled transfers left a wallet short with no open case`);
  if (c.shortfall_over_credit > 0) v.push(`${c.shortfall_over_credit} cancelled transfers report a shortfall larger than they credited`);
  if (c.negative_wallets_unexplained > 0) v.push(`${c.negative_wallets_unexplained} wallets are below zero with no cancelled transfer to explain it`);
  if (c.unknown_booked !== c.unknown_sent) v.push(`${c.unknown_sent - c.unknown_booked} of ${c.unknown_sent} cancellations of transfers we never had were not booked once to suspense with an open case`);
  const stuck = f.stuck.operations + f.stuck.deposits + f.stuck.inbox + f.stuck.inbox_failed + f.stuck.deliveries + f.stuck.refunds;
  if (stuck > 0) v.push(`work left undone: ${JSON.stringify(f.stuck)}`);
  return v;
}
