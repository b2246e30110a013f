// Online redemptions in micro-batches: the redeems that arrive together share one call of
// seigo_redeem_online (0080), one round trip and one commit (group commit, src/kernel/batcher.ts),
// instead of three round trips and a commit each. Exactly once still rests on the conditional
// UPDATE, and a batch never holds one ticket twice in flight. A scan the batch did not redeem is
// answered by the one-by-one path (signature check, then `redeem`), which says why.
import type pg from 'pg';
import { Batcher } from '../kernel/batcher.ts';
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type { Redeemed } from './redeem.ts';

const REDEEM_ONLINE = 'SELECT ticket_id, redemption_id, redeemed_at FROM seigo_redeem_online($1, $2, $3, $4, $5, $6, $7)';

/** A scan to redeem online: by ticket id, or by the QR token presented (which must be the one issued). */
export interface OnlineScan { partnerId: string; gateId: string; ticketId: string; qr: string | null; now: Date }

/**
 * Redeems one partner's scans in one statement; for each, what it redeemed or null (not redeemed
 * here: used, not valid, another facility or partner, or a token seigo did not issue). A ticket
 * named twice is tried once; the later scans get null.
 */
export async function redeemOnline(q: Queryable, partnerId: string, scans: readonly OnlineScan[]): Promise<(Redeemed | null)[]> {
  const seen = new Set<string>();
  const first = scans.filter((s) => !seen.has(s.ticketId) && seen.add(s.ticketId));
  const { rows } = await q.query<{ ticket_id: string; redemption_id: string; redeemed_at: Date }>({
    name: 'ticket_redeem_online', text: REDEEM_ONLINE,
    values: [partnerId, first.map((s) => s.ticketId), first.map(() => uuidv7()), first.map((s) => s.gateId), first.map((s) => s.now),
      first.map(() => uuidv7()), first.map((s) => s.qr)],
  });
  const won = new Map(rows.map((r) => [r.ticket_id, r]));
  const counted = new Set<string>();
  return scans.map((s) => {
    const w = won.get(s.ticketId);
    if (!w || counted.has(s.ticketId)) return null;
    counted.add(s.ticketId);
    return { redemptionId: w.redemption_id, ticketId: w.ticket_id, gateId: s.gateId, redeemedAt: w.redeemed_at };
  });
}

/** The ticket id a QR token names, read without checking it (the database compares the whole token). */
export function ticketIdOf(qr: string): string | null {
  const payload = qr.split('.')[1];
  if (!payload) return null;
  try {
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { t?: unknown };
    return typeof c.t === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(c.t) ? c.t : null;
  } catch {
    return null;
  }
}

export interface RedeemerOptions { maxBatch?: number; maxInFlight?: number }

/** Online redemption for one API process, batched across concurrent requests on the partner pool. */
export class Redeemer {
  private readonly batcher: Batcher<OnlineScan, Redeemed | null>;

  constructor(private readonly pool: pg.Pool, opts: RedeemerOptions = {}) {
    this.batcher = new Batcher<OnlineScan, Redeemed | null>((items) => this.flush(items), {
      maxBatch: opts.maxBatch ?? 128, maxInFlight: opts.maxInFlight ?? 4, keyOf: (s) => s.ticketId,
    });
  }

  /** The redemption if this scan redeemed its ticket now; null when the one-by-one path must say why not. */
  tryRedeem(scan: OnlineScan): Promise<Redeemed | null> {
    return this.batcher.submit(scan);
  }

  private async flush(scans: readonly OnlineScan[]): Promise<(Redeemed | null)[]> {
    const byPartner = new Map<string, number[]>();
    scans.forEach((s, i) => byPartner.set(s.partnerId, [...(byPartner.get(s.partnerId) ?? []), i]));
    const out = new Array<Redeemed | null>(scans.length).fill(null);
    await Promise.all([...byPartner].map(async ([partnerId, idx]) => {
      // A failed batch (a deadlock with an offline upload, say) leaves its scans to the one-by-one path.
      const r = await redeemOnline(this.pool, partnerId, idx.map((i) => scans[i]!)).catch(() => null);
      r?.forEach((o, j) => { out[idx[j]!] = o; });
    }));
    return out;
  }
}
