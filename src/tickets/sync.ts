// Offline gates: the manifest a gate downloads (the day's verification keys and revoked tickets),
// and the upload of what it redeemed while offline, idempotent per (gate, batch id). The earliest
// redemption by gate time wins; every other one of the same ticket is kept as a conflict that the
// settle worker turns into a case. A malformed batch is refused whole, before anything is written.
import { createHash } from 'node:crypto';
import type { Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { getGate, type Gate } from '../partners/index.ts';
import { verifyQr, type TicketKeys, type VerificationKey } from './qr.ts';
import { INSERT_REDEMPTION } from './redeem.ts';
import { POSTING_FOR } from './state.ts';
import { INSERT_EVENTS, dayBounds, getTicket, type Ticket } from './tickets.ts';

/** A gate's clock may run ahead of ours by this much; a scan further in the future is refused. */
export const GATE_FUTURE_SKEW_MS = 5 * 60_000;

const REVOKED = `
  SELECT id FROM tickets WHERE partner_id = $1 AND facility = $2 AND status IN ('cancelled', 'refunded')
    AND valid_from < $4 AND valid_until > $3 ORDER BY id`;
const INSERT_BATCH = `
  INSERT INTO gate_sync_batches (gate_id, batch_id, partner_id, request_hash, result) VALUES ($1, $2, $3, $4, '{}')
  ON CONFLICT (gate_id, batch_id) DO NOTHING`;
const SELECT_BATCH = 'SELECT request_hash, result FROM gate_sync_batches WHERE gate_id = $1 AND batch_id = $2';
const STORE_RESULT = 'UPDATE gate_sync_batches SET result = $3 WHERE gate_id = $1 AND batch_id = $2';
const REDEEM_OFFLINE = `
  UPDATE tickets SET status = 'redeemed', redemption_id = $2, redeemed_gate = $3, redeemed_gate_time = $4, redeemed_at = now()
  WHERE id = $1 AND status = 'issued'`;
// An earlier scan moves the redemption to itself; the later one becomes the conflict.
const SUPERSEDE = `
  UPDATE tickets SET redemption_id = $2, redeemed_gate = $3, redeemed_gate_time = $4, redeemed_at = now()
  WHERE id = $1 AND status = 'redeemed' AND redeemed_gate_time > $4`;
const MARK_CONFLICT = `UPDATE ticket_redemptions SET outcome = 'conflict', reason = $2 WHERE id = $1`;
const INSERT_CONFLICT = `
  INSERT INTO ticket_conflicts (id, partner_id, ticket_id, cause, winner_redemption_id, loser_redemption_id) VALUES ($1, $2, $3, $4, $5, $6)`;

export interface Manifest { gateId: string; facility: string; date: string; keys: VerificationKey[]; revoked: string[] }

export async function manifest(tx: Tx, keys: TicketKeys, partnerId: string, gateId: string, date: string): Promise<Manifest | null> {
  const gate = await getGate(tx, gateId);
  if (!gate) return null;
  const { from, until } = dayBounds(date);
  const revoked = await tx.query<{ id: string }>(REVOKED, [partnerId, gate.facility, from, until]);
  return { gateId, facility: gate.facility, date, keys: await keys.forDay(tx, from, until), revoked: revoked.rows.map((r) => r.id) };
}

export interface Scan { qr?: string | undefined; ticketId?: string | undefined; gateTime: Date }
export type ScanOutcome = 'accepted' | 'conflict' | 'duplicate' | 'rejected';
export interface ScanResult { index: number; ticketId: string; redemptionId: string; outcome: ScanOutcome; reason?: string }
export interface SyncResult { batchId: string; gateId: string; received: number; results: ScanResult[]; counts: Record<ScanOutcome, number> }

export type SyncError =
  | { code: 'gate_not_found' }
  | { code: 'invalid_batch'; errors: { index: number; code: string }[] }
  | { code: 'batch_mismatch' };

/** A batch's scans with their QR signatures checked: run before the partner transaction (keys are read on another connection). */
export interface VerifiedBatch { scans: readonly Scan[]; ids: string[]; facilities: (string | null)[]; errors: { index: number; code: string }[] }

export async function verifyBatch(keys: TicketKeys, scans: readonly Scan[], now: Date): Promise<VerifiedBatch> {
  const errors: { index: number; code: string }[] = [];
  const ids: string[] = [];
  const facilities: (string | null)[] = [];
  for (const [index, s] of scans.entries()) {
    if (s.gateTime.getTime() > now.getTime() + GATE_FUTURE_SKEW_MS) errors.push({ index, code: 'gate_time_in_future' });
    if (s.qr === undefined) { ids.push(s.ticketId!); facilities.push(null); continue; }
    // Signature only: the gate judged validity at its own time, which may be long past by the upload.
    const v = await verifyQr(s.qr, (kid) => keys.publicKey(kid));
    if (!v.ok) { errors.push({ index, code: v.error }); ids.push(''); facilities.push(null); continue; }
    if (s.ticketId !== undefined && s.ticketId !== v.value.t) errors.push({ index, code: 'ticket_id_mismatch' });
    ids.push(v.value.t);
    facilities.push(v.value.f);
  }
  return { scans, ids, facilities, errors };
}

/** Every scan's ticket id, or the reasons the batch is refused whole (a forged QR, another facility, a time in the future). */
function validate(gate: Gate, batch: VerifiedBatch): Result<string[], SyncError> {
  const errors = [...batch.errors];
  batch.facilities.forEach((f, index) => { if (f !== null && f !== gate.facility) errors.push({ index, code: 'wrong_facility' }); });
  errors.sort((a, b) => a.index - b.index);
  return errors.length ? err({ code: 'invalid_batch', errors }) : ok(batch.ids);
}

interface Ctx { tx: Tx; partnerId: string; gate: Gate; batchId: string }

/** Applies one scan to its (locked) ticket; returns its outcome. The earliest gate time wins. */
async function applyScan(c: Ctx, t: Ticket | null, ticketId: string, index: number, gateTime: Date): Promise<ScanResult> {
  const id = uuidv7();
  const record = (outcome: ScanOutcome, reason: string | null) => c.tx.query({
    name: 'ticket_redemption_insert', text: INSERT_REDEMPTION, values: [id, c.partnerId, ticketId, c.gate.id, gateTime, 'offline', c.batchId, index, outcome, reason],
  });
  const conflict = (cause: string, winner: string | null, loser: string) =>
    c.tx.query(INSERT_CONFLICT, [uuidv7(), c.partnerId, ticketId, cause, winner, loser]);
  const result = (outcome: ScanOutcome, reason?: string): ScanResult => ({ index, ticketId, redemptionId: id, outcome, ...(reason ? { reason } : {}) });

  if (!t) { await record('rejected', 'ticket_not_found'); return result('rejected', 'ticket_not_found'); }
  if (t.facility !== c.gate.facility) { await record('rejected', 'wrong_facility'); return result('rejected', 'wrong_facility'); }
  if (t.status === 'issued') {
    await record('accepted', null);
    await c.tx.query(REDEEM_OFFLINE, [t.id, id, c.gate.id, gateTime]);
    await c.tx.query(INSERT_EVENTS, [[uuidv7()], [t.id], c.partnerId, 'issued', 'redeemed', 'redeemed_offline', POSTING_FOR.redeemed]);
    return result('accepted');
  }
  if (t.status !== 'redeemed') {
    await record('conflict', `ticket_${t.status}`);
    await conflict('ticket_redeemed_after_refund', null, id);
    return result('conflict', `ticket_${t.status}`);
  }
  // The same gate scanning the same ticket again is a rescan, not a second entry.
  if (t.redeemedGate === c.gate.id) { await record('duplicate', 'same_gate'); return result('duplicate', 'same_gate'); }
  if (t.redeemedGateTime! <= gateTime) {
    await record('conflict', 'redeemed_earlier_elsewhere');
    await conflict('ticket_double_redemption', t.redemptionId, id);
    return result('conflict', 'redeemed_earlier_elsewhere');
  }
  await record('accepted', null);
  await c.tx.query(SUPERSEDE, [t.id, id, c.gate.id, gateTime]);
  await c.tx.query(MARK_CONFLICT, [t.redemptionId, 'redeemed_earlier_elsewhere']);
  await c.tx.query(INSERT_EVENTS, [[uuidv7()], [t.id], c.partnerId, 'redeemed', 'redeemed', 'earlier_offline_redemption', null]);
  await conflict('ticket_double_redemption', id, t.redemptionId!);
  return result('accepted', 'earlier_than_recorded');
}

export interface SyncInput { partnerId: string; gateId: string; batchId: string; batch: VerifiedBatch }

/** What makes two uploads of a batch id the same batch: its scans, in order. */
const batchHash = (scans: readonly Scan[]): string =>
  createHash('sha256').update(JSON.stringify(scans.map((s) => [s.qr ?? null, s.ticketId ?? null, s.gateTime.toISOString()]))).digest('hex');

/** Applies an offline batch once; a repeat of the same batch id returns the first result (`replayed`). */
export async function syncGate(tx: Tx, input: SyncInput): Promise<Result<{ result: SyncResult; replayed: boolean }, SyncError>> {
  const gate = await getGate(tx, input.gateId);
  if (!gate) return err({ code: 'gate_not_found' });
  const ids = validate(gate, input.batch);
  if (!ids.ok) return ids;
  const scans = input.batch.scans;
  const hash = batchHash(scans);
  const inserted = await tx.query(INSERT_BATCH, [gate.id, input.batchId, input.partnerId, hash]);
  if (inserted.rowCount === 0) {
    const prior = (await tx.query<{ request_hash: string; result: SyncResult }>(SELECT_BATCH, [gate.id, input.batchId])).rows[0]!;
    return prior.request_hash === hash ? ok({ result: prior.result, replayed: true }) : err({ code: 'batch_mismatch' });
  }
  const ctx: Ctx = { tx, partnerId: input.partnerId, gate, batchId: input.batchId };
  // In gate-time order, each ticket locked once in id order first, so concurrent batches cannot deadlock.
  const order = scans.map((s, index) => ({ index, s, id: ids.value[index]! })).sort((a, b) => a.s.gateTime.getTime() - b.s.gateTime.getTime() || a.index - b.index);
  for (const id of [...new Set(ids.value)].sort()) await getTicket(tx, id, true);
  const results: ScanResult[] = [];
  for (const o of order) results.push(await applyScan(ctx, await getTicket(tx, o.id), o.id, o.index, o.s.gateTime));
  results.sort((a, b) => a.index - b.index);
  const counts: Record<ScanOutcome, number> = { accepted: 0, conflict: 0, duplicate: 0, rejected: 0 };
  for (const r of results) counts[r.outcome] += 1;
  const result: SyncResult = { batchId: input.batchId, gateId: gate.id, received: scans.length, results, counts };
  await tx.query(STORE_RESULT, [gate.id, input.batchId, JSON.stringify(result)]);
  return ok({ result, replayed: false });
}
