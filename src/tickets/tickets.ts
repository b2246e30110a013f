// Issuing tickets and taking back unused ones, in a partner transaction (row-level security shows
// only the caller's rows). Each transition writes a ticket_events row naming what the ledger worker
// must post (settle.ts), so the partner role never touches the ledger.
import type { Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type { Product } from '../partners/index.ts';
import { signQr, type TicketKeys } from './qr.ts';
import { POSTING_FOR, type TicketStatus } from './state.ts';

/** Ticket days are facility days in Japan (JST, UTC+9): a day pass for 2026-12-24 opens at 00:00 JST. */
export const TICKET_UTC_OFFSET = '+09:00';
export const MAX_DAYS_AHEAD = 366;
export const MAX_QUANTITY = 100;

export interface Ticket {
  id: string; partnerId: string; productId: string; facility: string; issueId: string;
  validFrom: Date; validUntil: Date; price: bigint; currency: string; qr: string; status: TicketStatus;
  redemptionId: string | null; redeemedGate: string | null; redeemedGateTime: Date | null; redeemedAt: Date | null;
  closedAt: Date | null; createdAt: Date;
}

const COLUMNS = `id, partner_id, product_id, facility, issue_id, valid_from, valid_until, price::text AS price, currency, qr, status,
  redemption_id, redeemed_gate, redeemed_gate_time, redeemed_at, closed_at, created_at`;
export const SELECT_TICKET = `SELECT ${COLUMNS} FROM tickets WHERE id = $1`;
const INSERT_TICKETS = `
  INSERT INTO tickets (id, partner_id, product_id, facility, issue_id, valid_from, valid_until, price, currency, qr)
  SELECT unnest($1::uuid[]), $2, $3, $4, $5, $6, $7, $8, $9, unnest($10::text[])
  RETURNING ${COLUMNS}`;
export const INSERT_EVENTS = `
  INSERT INTO ticket_events (id, ticket_id, partner_id, from_status, to_status, cause, posting)
  SELECT unnest($1::uuid[]), unnest($2::uuid[]), $3, $4, $5, $6, $7`;
const CLOSE = `
  UPDATE tickets SET status = $2, closed_at = now() WHERE id = $1 AND status = 'issued' RETURNING ${COLUMNS}`;

export interface TicketRow {
  id: string; partner_id: string; product_id: string; facility: string; issue_id: string; valid_from: Date; valid_until: Date;
  price: string; currency: string; qr: string; status: TicketStatus; redemption_id: string | null; redeemed_gate: string | null;
  redeemed_gate_time: Date | null; redeemed_at: Date | null; closed_at: Date | null; created_at: Date;
}

export const toTicket = (r: TicketRow): Ticket => ({
  id: r.id, partnerId: r.partner_id, productId: r.product_id, facility: r.facility, issueId: r.issue_id,
  validFrom: r.valid_from, validUntil: r.valid_until, price: BigInt(r.price), currency: r.currency, qr: r.qr, status: r.status,
  redemptionId: r.redemption_id, redeemedGate: r.redeemed_gate, redeemedGateTime: r.redeemed_gate_time, redeemedAt: r.redeemed_at,
  closedAt: r.closed_at, createdAt: r.created_at,
});

export const ticketJson = (t: Ticket) => ({
  id: t.id, product_id: t.productId, facility: t.facility, issue_id: t.issueId, valid_from: t.validFrom, valid_until: t.validUntil,
  price: t.price.toString(), currency: t.currency, status: t.status, qr: t.qr,
  redemption: t.redemptionId ? { id: t.redemptionId, gate_id: t.redeemedGate, gate_time: t.redeemedGateTime, recorded_at: t.redeemedAt } : null,
  closed_at: t.closedAt, created_at: t.createdAt,
});

/** The facility day `date` (YYYY-MM-DD) as [start, end). */
export function dayBounds(date: string): { from: Date; until: Date } {
  const from = new Date(`${date}T00:00:00${TICKET_UTC_OFFSET}`);
  return { from, until: new Date(from.getTime() + 86_400_000) };
}

/** Today's facility day as YYYY-MM-DD. */
export function facilityToday(now: Date): string {
  return new Date(now.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);
}

export type IssueError =
  | { code: 'product_not_found' }
  | { code: 'invalid_date'; detail: string };

export interface IssueInput { partnerId: string; product: Product | null; date: string; quantity: number; now: Date }

/** Issues `quantity` tickets for `product` on `date`, each with its signed QR token. */
export async function issueTickets(tx: Tx, keys: TicketKeys, input: IssueInput): Promise<Result<{ issueId: string; tickets: Ticket[] }, IssueError>> {
  const { product, now } = input;
  if (!product) return err({ code: 'product_not_found' });
  const { from, until } = dayBounds(input.date);
  if (Number.isNaN(from.getTime())) return err({ code: 'invalid_date', detail: `not a date: ${input.date}` });
  const today = dayBounds(facilityToday(now)).from;
  if (from < today) return err({ code: 'invalid_date', detail: `${input.date} is in the past` });
  if (from.getTime() - today.getTime() > MAX_DAYS_AHEAD * 86_400_000) return err({ code: 'invalid_date', detail: `tickets are sold at most ${MAX_DAYS_AHEAD} days ahead` });
  const signing = await keys.signingKey(now);
  const ids = Array.from({ length: input.quantity }, () => uuidv7());
  const nbf = Math.floor(from.getTime() / 1000);
  const exp = Math.floor(until.getTime() / 1000);
  const qrs = await Promise.all(ids.map((t) => signQr({ t, p: product.id, f: product.facility, nbf, exp }, signing.kid, signing.key)));
  const issueId = uuidv7();
  const r = await tx.query<TicketRow>(INSERT_TICKETS, [ids, input.partnerId, product.id, product.facility, issueId, from, until, product.price.toString(), product.currency, qrs]);
  await tx.query(INSERT_EVENTS, [ids.map(() => uuidv7()), ids, input.partnerId, null, 'issued', 'issued', POSTING_FOR.issued]);
  return ok({ issueId, tickets: r.rows.map(toTicket) });
}

export async function getTicket(tx: Tx, id: string, lock = false): Promise<Ticket | null> {
  const r = await tx.query<TicketRow>(lock ? `${SELECT_TICKET} FOR UPDATE` : SELECT_TICKET, [id]);
  return r.rows[0] ? toTicket(r.rows[0]) : null;
}

export type CloseError = { code: 'ticket_not_found' } | { code: 'ticket_not_unused'; status: TicketStatus };

/** Cancels or refunds an unused ticket: it joins the gates' revocation list and its sale is reversed. */
export async function closeTicket(tx: Tx, partnerId: string, id: string, to: 'cancelled' | 'refunded'): Promise<Result<Ticket, CloseError>> {
  const r = await tx.query<TicketRow>(CLOSE, [id, to]);
  if (!r.rows[0]) {
    const t = await getTicket(tx, id);
    return err(t ? { code: 'ticket_not_unused', status: t.status } : { code: 'ticket_not_found' });
  }
  await tx.query(INSERT_EVENTS, [[uuidv7()], [id], partnerId, 'issued', to, to, POSTING_FOR[to]]);
  return ok(toTicket(r.rows[0]));
}
