// Detectors: periodic SQL sweeps that open a case for each outcome the earlier modules only report
// (an operation still unknown past its deadline, a dead delivery, a notification that failed every
// retry, money in suspense, a reversed preliminary credit the wallet had already spent). Each finds rows with no case yet and opens one
// through openCase, so a second sweep, or two workers sweeping at once, opens nothing twice.
//
// A problem an operator already closed is not reopened unless it came back after the closing: each
// sweep names, per row, since when the condition holds (`since`); a case closed after that covers
// it. Three conditions clear themselves in a way that is clearly right to record: the janitor
// learns an unknown operation's outcome, a redriven delivery gets delivered, a replayed notification
// gets processed. Those cases are resolved by 'system' with the reason in their history; nothing
// else is closed without a person.
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';
import { openCase, transitionCase, type CaseSubject, type CaseSubjectType, type OpenCaseInput } from './cases.ts';
import { logCaseClosed, logCaseOpened } from './log.ts';

interface Detector {
  cause: string;
  subjectType: CaseSubjectType;
  /** Rows with `subject_id` (text) and `since` (timestamptz), plus whatever `toCase` reads. */
  candidates: string;
  toCase(row: Record<string, unknown>): Omit<OpenCaseInput, 'cause' | 'subject'>;
}

const s = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
const rel = (type: CaseSubjectType, id: unknown): CaseSubject[] => (id === null || id === undefined ? [] : [{ type, id: String(id) }]);

export const DETECTORS: readonly Detector[] = [
  {
    cause: 'operation_unknown_overdue', subjectType: 'operation',
    candidates: `SELECT id::text AS subject_id, deadline_at AS since, provider, kind, entity_type, entity_id, inquiries, error_code, error_message, deadline_at
                 FROM operations WHERE status = 'unknown' AND deadline_at < now()`,
    toCase: (r) => ({
      kind: 'operation',
      summary: `${s(r.provider)} ${s(r.kind)} is still unknown past its deadline after ${s(r.inquiries)} inquiries`,
      related: r.entity_type === 'deposit' ? rel('deposit', r.entity_id) : [],
      details: { provider: r.provider, operation_kind: r.kind, entity_type: r.entity_type, entity_id: r.entity_id, inquiries: r.inquiries,
        error_code: r.error_code, error_message: r.error_message, deadline_at: r.deadline_at },
    }),
  },
  {
    cause: 'delivery_dead', subjectType: 'delivery',
    candidates: `SELECT d.id::text AS subject_id, d.updated_at AS since, s.name AS subscription, m.topic, m.entity_type, m.entity_id, d.attempts,
                        d.last_error, d.last_status_code, d.redrives
                 FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN outbox_messages m ON m.id = d.message_id
                 WHERE d.status = 'dead'`,
    toCase: (r) => ({
      kind: 'delivery',
      summary: `delivery of ${s(r.topic)} to ${s(r.subscription)} is dead after ${s(r.attempts)} attempts: ${s(r.last_error) || 'no error recorded'}`,
      related: r.entity_type === 'deposit' ? rel('deposit', r.entity_id) : [],
      details: { subscription: r.subscription, topic: r.topic, entity_type: r.entity_type, entity_id: r.entity_id, attempts: r.attempts,
        last_error: r.last_error, last_status_code: r.last_status_code, redrives: r.redrives },
      // A case about a dead case notification must not announce itself through the same dead end.
      notify: !s(r.topic).startsWith('case.'),
    }),
  },
  {
    // A notification whose processing failed after every retry: what it carried is not applied.
    cause: 'inbox_failed', subjectType: 'inbox',
    candidates: `SELECT id::text AS subject_id, next_attempt_at AS since, provider, event_id, event_type, source, attempts, last_error, replays, received_at
                 FROM inbox WHERE status = 'failed'`,
    toCase: (r) => ({
      kind: 'intake',
      summary: `${s(r.provider)} notification ${s(r.event_id)} failed after ${s(r.attempts)} attempts: ${s(r.last_error) || 'no error recorded'}`,
      details: { provider: r.provider, event_id: r.event_id, event_type: r.event_type, source: r.source, attempts: r.attempts,
        last_error: r.last_error, replays: r.replays, received_at: r.received_at },
    }),
  },
  {
    // Permanent once true (the deposit row keeps what went to suspense): a closed case covers it for good.
    // A bank-transfer deposit's suspense is its transfer's, which bank_transfer_suspense reports.
    cause: 'deposit_suspense', subjectType: 'deposit',
    candidates: `SELECT id::text AS subject_id, '-infinity'::timestamptz AS since, user_id, method, provider, amount::text AS amount,
                        suspended::text AS suspended, currency, status, ledger_transaction_id
                 FROM deposits WHERE suspended > 0 AND method <> 'bank_transfer'`,
    toCase: (r) => ({
      kind: 'deposit',
      summary: `${s(r.suspended)} ${s(r.currency)} of a ${s(r.method)} deposit by user ${s(r.user_id)} sits in suspense`,
      related: rel('ledger_transaction', r.ledger_transaction_id),
      details: { user_id: r.user_id, method: r.method, provider: r.provider, amount: r.amount, suspended: r.suspended, currency: r.currency, deposit_status: r.status },
    }),
  },
  {
    cause: 'bank_transfer_suspense', subjectType: 'bank_transfer',
    candidates: `SELECT external_id AS subject_id, '-infinity'::timestamptz AS since, account_number, amount::text AS amount, suspended::text AS suspended,
                        currency, payer_name, reason, user_id, ledger_transaction_id, transaction_date
                 FROM bank_transfers WHERE status = 'suspense'`,
    toCase: (r) => ({
      kind: 'deposit',
      summary: `bank transfer of ${s(r.amount)} ${s(r.currency)} to account ${s(r.account_number)} sent to suspense (${s(r.reason)})`,
      related: rel('ledger_transaction', r.ledger_transaction_id),
      details: { account_number: r.account_number, amount: r.amount, suspended: r.suspended, currency: r.currency, payer_name: r.payer_name,
        reason: r.reason, user_id: r.user_id, transaction_date: r.transaction_date },
    }),
  },
  {
    // 速報取消 after the preliminary credit was spent: the reversal took the wallet below zero.
    cause: 'preliminary_cancel_shortfall', subjectType: 'deposit',
    candidates: `SELECT d.id::text AS subject_id, '-infinity'::timestamptz AS since, d.user_id, d.method, d.amount::text AS amount,
                        d.shortfall::text AS shortfall, d.currency, a.id AS wallet_account_id
                 FROM deposits d LEFT JOIN ledger_accounts a ON a.kind = 'wallet' AND a.owner = d.user_id AND a.currency = d.currency
                 WHERE d.shortfall > 0`,
    toCase: (r) => ({
      kind: 'deposit',
      summary: `a cancelled preliminary paid notice took user ${s(r.user_id)}'s wallet ${s(r.shortfall)} ${s(r.currency)} below zero`,
      related: rel('ledger_account', r.wallet_account_id),
      details: { user_id: r.user_id, method: r.method, amount: r.amount, shortfall: r.shortfall, currency: r.currency, wallet_account_id: r.wallet_account_id },
    }),
  },
];

/** Open cases whose condition has cleared by itself, with the reason to record. */
const CLEARED = `
SELECT c.id, 'the janitor learned the outcome: the operation is ' || o.status AS reason
FROM cases c JOIN operations o ON c.subject_type = 'operation' AND o.id::text = c.subject_id
WHERE c.cause = 'operation_unknown_overdue' AND c.status IN ('open', 'investigating') AND o.status IN ('succeeded', 'failed')
UNION ALL
SELECT c.id, 'the delivery was delivered after ' || d.redrives || ' redrive(s)'
FROM cases c JOIN deliveries d ON c.subject_type = 'delivery' AND d.id::text = c.subject_id
WHERE c.cause = 'delivery_dead' AND c.status IN ('open', 'investigating') AND d.status = 'delivered'
UNION ALL
SELECT c.id, 'the notification was ' || i.status || ' after ' || i.replays || ' replay(s)'
FROM cases c JOIN inbox i ON c.subject_type = 'inbox' AND i.id::text = c.subject_id
WHERE c.cause = 'inbox_failed' AND c.status IN ('open', 'investigating') AND i.status IN ('processed', 'ignored')
LIMIT $1`;

export interface DetectResult {
  /** Cases opened, by cause. */
  opened: Record<string, number>;
  /** Cases resolved by 'system' because their condition cleared. */
  autoResolved: number;
}

/** One sweep of every detector, at most `limit` new cases per detector. */
export async function detectCases(pool: pg.Pool, opts: { limit?: number; log?: Logger } = {}): Promise<DetectResult> {
  const limit = opts.limit ?? 500;
  const opened: Record<string, number> = {};
  for (const d of DETECTORS) {
    const rows = await pool.query<Record<string, unknown> & { subject_id: string }>(
      `SELECT x.* FROM (${d.candidates}) x
       WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.subject_type = $1 AND c.subject_id = x.subject_id AND c.cause = $2
                           AND (c.closed_at IS NULL OR c.closed_at >= x.since))
       ORDER BY x.subject_id LIMIT $3`, [d.subjectType, d.cause, limit]);
    let n = 0;
    for (const row of rows.rows) {
      const subject = { type: d.subjectType, id: row.subject_id };
      const r = await withTx(pool, (tx) => openCase(tx, { ...d.toCase(row), cause: d.cause, subject }));
      if (r.opened) n++;
      if (opts.log) logCaseOpened(opts.log, r, { cause: d.cause, subject });
    }
    if (n) opened[d.cause] = n;
  }
  const cleared = await pool.query<{ id: string; reason: string }>(CLEARED, [limit]);
  let autoResolved = 0;
  for (const c of cleared.rows) {
    const moved = await withTx(pool, (tx) => transitionCase(tx, c.id, 'resolved', { actor: 'system', note: `condition cleared: ${c.reason}`, resolution: { auto: true, reason: c.reason } }));
    if (moved) {
      autoResolved++;
      if (opts.log) logCaseClosed(opts.log, moved, 'system');
    }
  }
  return { opened, autoResolved };
}
