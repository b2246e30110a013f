// Online redemption (着券) at a gate, exactly once: a conditional `UPDATE … WHERE status = 'issued'`
// lets one of any number of concurrent redeems win; the others read who won, when and where.
import type { Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { getGate, type Gate } from '../partners/index.ts';
import { verifyQr, type QrError, type TicketKeys } from './qr.ts';
import { POSTING_FOR } from './state.ts';
import { INSERT_EVENTS, getTicket, type Ticket } from './tickets.ts';

const REDEEM = `
  UPDATE tickets SET status = 'redeemed', redemption_id = $2, redeemed_gate = $3, redeemed_gate_time = $4, redeemed_at = now()
  WHERE id = $1 AND status = 'issued'
  RETURNING redeemed_at`;
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
  const gate = await getGate(tx, input.gateId);
  if (!gate) return err({ code: 'gate_not_found' });
  // A QR for another facility is refused before any row is read: it says nothing about our tickets.
  if (scan.facility !== null && scan.facility !== gate.facility) {
    return err({ code: 'wrong_facility', ticketFacility: scan.facility, gateFacility: gate.facility });
  }
  const before = await getTicket(tx, scan.id);
  if (!before) return err({ code: 'ticket_not_found' });
  const early = refusal(before, gate, input.now);
  if (early) return err(early);
  const redemptionId = uuidv7();
  const won = await tx.query<{ redeemed_at: Date }>({ name: 'ticket_redeem', text: REDEEM, values: [before.id, redemptionId, gate.id, input.now] });
  if (!won.rows[0]) {
    // Another redeem committed first: say who, when and where.
    const after = await getTicket(tx, before.id);
    return err(refusal(after!, gate, input.now)!);
  }
  await tx.query({ name: 'ticket_redemption_insert', text: INSERT_REDEMPTION, values: [redemptionId, input.partnerId, before.id, gate.id, input.now, 'online', null, null, 'accepted', null] });
  await tx.query(INSERT_EVENTS, [[uuidv7()], [before.id], input.partnerId, 'issued', 'redeemed', 'redeemed_online', POSTING_FOR.redeemed]);
  return ok({ redemptionId, ticketId: before.id, gateId: gate.id, redeemedAt: won.rows[0].redeemed_at });
}
