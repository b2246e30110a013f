// Online redemption (着券) at a gate, exactly once: a conditional `UPDATE … WHERE status = 'issued'`
// lets one of any number of concurrent redeems win; the others read who won, when and where.
import type { Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { getGate, type Gate } from '../partners/index.ts';
import { verifyQr, type QrError, type TicketKeys } from './qr.ts';
import { getTicket, type Ticket } from './tickets.ts';

// The common case in one statement: the ticket unused, at this gate's facility, valid now; its
// redemption and event rows with it. Anything else falls back to reading why (redeem below).
const REDEEM_AT_GATE = `
  WITH g AS (SELECT id, facility FROM partner_gates WHERE id = $3),
  u AS (
    UPDATE tickets t SET status = 'redeemed', redemption_id = $2, redeemed_gate = g.id, redeemed_gate_time = $4, redeemed_at = now()
    FROM g WHERE t.id = $1 AND t.status = 'issued' AND t.facility = g.facility AND t.valid_from <= $4 AND $4 < t.valid_until
    RETURNING t.id, t.redeemed_at),
  r AS (
    INSERT INTO ticket_redemptions (id, partner_id, ticket_id, gate_id, gate_time, source, outcome)
    SELECT $2, $5, u.id, $3, $4, 'online', 'accepted' FROM u),
  e AS (
    INSERT INTO ticket_events (id, ticket_id, partner_id, from_status, to_status, cause, posting)
    SELECT $6, u.id, $5, 'issued', 'redeemed', 'redeemed_online', 'redeemed' FROM u)
  SELECT redeemed_at FROM u`;
export const INSERT_REDEMPTION = `
  INSERT INTO ticket_redemptions (id, partner_id, ticket_id, gate_id, gate_time, source, batch_id, scan_index, outcome, reason)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;

export type RedeemError =
  | { code: QrError }
  | { code: 'gate_not_found' }
  | { code: 'ticket_not_found' }
  | { code: 'wrong_facility'; ticketFacility: string; gateFacility: string }
  | { code: 'ticket_not_valid_now'; validFrom: Date; validUntil: Date }
  | { code: 'already_redeemed'; redeemedAt: Date; gateId: string; gateTime: Date }
  | { code: 'ticket_cancelled' | 'ticket_refunded' };

export interface RedeemInput { partnerId: string; gateId: string; scan: Scanned; now: Date }
export interface Redeemed { redemptionId: string; ticketId: string; gateId: string; redeemedAt: Date }
/** The ticket a scan names, and the facility its QR says (null when given by id). */
export interface Scanned { id: string; facility: string | null }

/**
 * Which ticket a scan names, checked as a gate would: the QR's signature and validity, or the id.
 * Run it before the partner transaction: a key not yet cached is read on another connection.
 */
export async function scanOf(keys: TicketKeys, s: { qr?: string | undefined; ticketId?: string | undefined }, now: Date): Promise<Result<Scanned, RedeemError>> {
  if (s.qr === undefined) return ok({ id: s.ticketId!, facility: null });
  const v = await verifyQr(s.qr, (kid) => keys.publicKey(kid), now);
  return v.ok ? ok({ id: v.value.t, facility: v.value.f }) : err({ code: v.error });
}

/** Why `t` cannot be redeemed at `gate` now, if it cannot. */
function refusal(t: Ticket, gate: Gate, now: Date): RedeemError | null {
  if (t.facility !== gate.facility) return { code: 'wrong_facility', ticketFacility: t.facility, gateFacility: gate.facility };
  if (t.status === 'redeemed') return { code: 'already_redeemed', redeemedAt: t.redeemedAt!, gateId: t.redeemedGate!, gateTime: t.redeemedGateTime! };
  if (t.status === 'cancelled' || t.status === 'refunded') return { code: `ticket_${t.status}` };
  if (now < t.validFrom || now >= t.validUntil) return { code: 'ticket_not_valid_now', validFrom: t.validFrom, validUntil: t.validUntil };
  return null;
}

export async function redeem(tx: Tx, input: RedeemInput): Promise<Result<Redeemed, RedeemError>> {
  const { scan } = input;
  const redemptionId = uuidv7();
  const fast = await tx.query<{ redeemed_at: Date }>({
    name: 'ticket_redeem_at_gate', text: REDEEM_AT_GATE, values: [scan.id, redemptionId, input.gateId, input.now, input.partnerId, uuidv7()],
  });
  if (fast.rows[0]) return ok({ redemptionId, ticketId: scan.id, gateId: input.gateId, redeemedAt: fast.rows[0].redeemed_at });
  // Why not: in the order a gate's operator needs it. The statement above changed nothing.
  const gate = await getGate(tx, input.gateId);
  if (!gate) return err({ code: 'gate_not_found' });
  // A QR for another facility is refused before any row is read: it says nothing about our tickets.
  if (scan.facility !== null && scan.facility !== gate.facility) {
    return err({ code: 'wrong_facility', ticketFacility: scan.facility, gateFacility: gate.facility });
  }
  const t = await getTicket(tx, scan.id);
  if (!t) return err({ code: 'ticket_not_found' });
  const why = refusal(t, gate, input.now);
  if (why) return err(why);
  // Unused and valid when read: a redeem that committed in between would have shown as redeemed.
  // Only a ticket whose validity began between the two reads lands here; ask the caller to retry.
  throw new Error(`ticket ${t.id} could not be redeemed and no reason was found`);
}
