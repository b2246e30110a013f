// The tickets worker, on the engine's own connection: posts what ticket events owe the ledger
// (sold: partner receivable → deferred revenue; refunded: back; redeemed: deferred → revenue) and
// opens a case for every redemption conflict. Claimed with SKIP LOCKED, so any number of workers
// share the work and each event is posted once (the posting's idempotency key holds it too).
import type pg from 'pg';
import { openCase } from '../cases/index.ts';
import { withTx, type Tx } from '../kernel/db.ts';
import { ensureAccounts, post } from '../ledger/index.ts';

const CLAIM_EVENTS = `
  SELECT e.id, e.ticket_id, e.partner_id, e.posting, t.price::text AS price, t.currency
  FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
  WHERE e.posting IS NOT NULL AND e.posted_at IS NULL
  ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED`;
const MARK_POSTED = 'UPDATE ticket_events SET posted_at = now(), ledger_transaction_id = $2 WHERE id = $1';
const CLAIM_CONFLICTS = `
  SELECT id, partner_id, ticket_id, cause, winner_redemption_id, loser_redemption_id FROM ticket_conflicts
  WHERE case_id IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`;
const SET_CASE = 'UPDATE ticket_conflicts SET case_id = $2 WHERE id = $1';
const REDEMPTIONS = 'SELECT id, gate_id, gate_time, source, batch_id FROM ticket_redemptions WHERE id = ANY($1::uuid[])';

interface EventRow { id: string; ticket_id: string; partner_id: string; posting: 'sold' | 'redeemed' | 'refunded'; price: string; currency: string }
interface ConflictRow { id: string; partner_id: string; ticket_id: string; cause: string; winner_redemption_id: string | null; loser_redemption_id: string }

/** The ledger accounts of a partner's ticket sales. */
async function accountsOf(tx: Tx, partnerId: string, currency: string) {
  const owner = `partner:${partnerId}`;
  const [receivable, deferred, revenue] = await ensureAccounts(tx, [
    { kind: 'clearing', owner, currency }, { kind: 'deferred_revenue', owner, currency }, { kind: 'revenue', owner, currency }]);
  return { receivable: receivable!.id, deferred: deferred!.id, revenue: revenue!.id };
}

/** The entries of one ticket event: credits positive, debits negative, summing to zero. */
export function ticketEntries(posting: EventRow['posting'], price: bigint, a: { receivable: string; deferred: string; revenue: string }) {
  switch (posting) {
    case 'sold': return [{ accountId: a.receivable, amount: -price }, { accountId: a.deferred, amount: price }];
    case 'refunded': return [{ accountId: a.deferred, amount: -price }, { accountId: a.receivable, amount: price }];
    case 'redeemed': return [{ accountId: a.deferred, amount: -price }, { accountId: a.revenue, amount: price }];
  }
}

/** Posts up to `limit` unposted ticket events; returns how many it took. */
export async function postTicketEvents(pool: pg.Pool, limit = 200): Promise<number> {
  return withTx(pool, async (tx) => {
    const { rows } = await tx.query<EventRow>(CLAIM_EVENTS, [limit]);
    for (const e of rows) {
      const price = BigInt(e.price);
      let txId: string | null = null;
      if (price > 0n) {
        const r = await post(tx, {
          idempotencyKey: `ticket:${e.ticket_id}:${e.posting}`, kind: `ticket_${e.posting}`,
          entries: ticketEntries(e.posting, price, await accountsOf(tx, e.partner_id, e.currency)),
          metadata: { ticket_id: e.ticket_id, partner_id: e.partner_id },
        });
        // Only wallets refuse postings; these accounts never do.
        if (!r.ok) throw new Error(`ticket posting refused: ${r.error.code}`);
        txId = r.value.transactionId;
      }
      await tx.query(MARK_POSTED, [e.id, txId]);
    }
    return rows.length;
  });
}

/** Opens a case for up to `limit` redemption conflicts without one; returns how many it took. */
export async function openConflictCases(pool: pg.Pool, limit = 100): Promise<number> {
  return withTx(pool, async (tx) => {
    const { rows } = await tx.query<ConflictRow>(CLAIM_CONFLICTS, [limit]);
    for (const c of rows) {
      const ids = [c.winner_redemption_id, c.loser_redemption_id].filter((x): x is string => x !== null);
      const redemptions = (await tx.query(REDEMPTIONS, [ids])).rows;
      const summary = c.cause === 'ticket_double_redemption'
        ? `ticket ${c.ticket_id} was redeemed at two gates; the earlier scan by gate time counts`
        : `ticket ${c.ticket_id} was redeemed offline after it was cancelled or refunded`;
      const opened = await openCase(tx, {
        kind: 'tickets', cause: c.cause, subject: { type: 'ticket', id: c.ticket_id }, summary,
        details: { partner_id: c.partner_id, winner_redemption_id: c.winner_redemption_id, loser_redemption_id: c.loser_redemption_id, redemptions },
      });
      await tx.query(SET_CASE, [c.id, opened.id]);
    }
    return rows.length;
  });
}

/** One pass of the tickets worker. */
export async function settleTickets(pool: pg.Pool): Promise<number> {
  return (await postTicketEvents(pool)) + (await openConflictCases(pool));
}
