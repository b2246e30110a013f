// The partner hot path's shortcuts keep their promises: a cached key is forgotten when it changes
// in another process (NOTIFY), and only while that news can arrive; batched rate counts are exact;
// a batch of online redemptions redeems each ticket once, only with the token seigo issued.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { eventually } from '../../test/helpers/engine.ts';
import { facilityToday, issueTickets, redeemOnline, TicketKeys } from '../tickets/index.ts';
import { createGate, createKey, createPartner, createPartnerDb, createProduct, countHits, PartnerKeys, revokeKey, withPartner, type PartnerDb } from './index.ts';

let t: TestDatabase;
let pdb: PartnerDb;
let partnerId: string;
beforeAll(async () => {
  t = await createTestDatabase();
  pdb = createPartnerDb(t.url, { max: 4, acquireTimeoutMs: 10_000 });
  const p = await createPartner(t.db.pool, 'hot');
  if (!p.ok) throw new Error('partner');
  partnerId = p.value.id;
});
afterAll(async () => { await pdb?.close(); await t?.drop(); });

const newKey = async () => {
  const k = await createKey(t.db.pool, { partner: partnerId, scopes: ['tickets:redeem'], rateLimit: { requests: 1000, windowSeconds: 60 } });
  if (!k.ok) throw new Error('key');
  return k.value;
};
// Another API process's change: straight in the database, so only its NOTIFY reaches this cache.
const revokeElsewhere = (id: string) => t.db.pool.query('UPDATE partner_api_keys SET revoked_at = now() WHERE id = $1', [id]);

describe('the key cache', () => {
  it('forgets a key revoked by another process as soon as its NOTIFY arrives', async () => {
    const keys = new PartnerKeys(pdb.pool, { cacheMs: 60_000 });
    keys.listen();
    try {
      const k = await newKey();
      await eventually(async () => (await keys.authenticate(`Bearer ${k.key}`)).ok && (keys as unknown as { listening: boolean }).listening);
      await revokeElsewhere(k.id);
      await eventually(async () => { const r = await keys.authenticate(`Bearer ${k.key}`); return !r.ok && r.error === 'key_revoked'; }, 5_000);
    } finally {
      await keys.close();
    }
  });

  it('reads the key on every request while it cannot hear about changes (LISTEN connection gone)', async () => {
    const keys = new PartnerKeys(pdb.pool, { cacheMs: 60_000 });
    try {
      const k = await newKey();
      expect((await keys.authenticate(`Bearer ${k.key}`)).ok).toBe(true);
      // Never listening: a change made behind its back is seen by the next request.
      await revokeElsewhere(k.id);
      expect(await keys.authenticate(`Bearer ${k.key}`)).toEqual({ ok: false, error: 'key_revoked' });
    } finally {
      await keys.close();
    }
  });

  it('serves a verified key from memory while listening; a revocation in this process is seen by the next request', async () => {
    const keys = new PartnerKeys(pdb.pool, { cacheMs: 60_000 });
    keys.listen();
    try {
      const k = await newKey();
      await eventually(async () => (keys as unknown as { listening: boolean }).listening);
      expect((await keys.authenticate(`Bearer ${k.key}`)).ok).toBe(true);
      // With the change notification switched off, a revocation elsewhere goes unseen: the key came from memory.
      await t.db.pool.query('ALTER TABLE partner_api_keys DISABLE TRIGGER partner_api_keys_changed');
      try {
        await revokeElsewhere(k.id);
        expect((await keys.authenticate(`Bearer ${k.key}`)).ok).toBe(true);
        expect(await keys.authenticate(`Bearer ${k.id}.${'B'.repeat(43)}`)).toEqual({ ok: false, error: 'invalid_key' });
      } finally {
        await t.db.pool.query('ALTER TABLE partner_api_keys ENABLE TRIGGER partner_api_keys_changed');
      }
      // The admin side of this process forgets the key itself, without waiting for the NOTIFY.
      const k2 = await newKey();
      expect((await keys.authenticate(`Bearer ${k2.key}`)).ok).toBe(true);
      expect((await revokeKey(t.db.pool, k2.id)).ok).toBe(true);
      expect(await keys.authenticate(`Bearer ${k2.key}`)).toEqual({ ok: false, error: 'key_revoked' });
    } finally {
      await keys.close();
    }
  });
});

describe('batched rate counts', () => {
  it('give every hit of a key its own place in the window, whatever the batches (property)', async () => {
    const keyIds = [(await newKey()).id, (await newKey()).id, (await newKey()).id];
    let window = Date.UTC(2026, 0, 1);
    await fc.assert(fc.asyncProperty(fc.array(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }), async (batches) => {
      window += 60_000; // a fresh window per run
      const windowStart = new Date(window);
      const seen = new Map<string, number[]>();
      for (const batch of batches) {
        const counts = await countHits(pdb.pool, batch.map((k) => ({ keyId: keyIds[k]!, windowStart })));
        batch.forEach((k, i) => seen.set(keyIds[k]!, [...(seen.get(keyIds[k]!) ?? []), counts[i]!.count]));
        // After every batch: each key's counts so far are exactly 1..n, in order.
        for (const c of seen.values()) expect(c).toEqual(c.map((_, i) => i + 1));
      }
    }), { numRuns: 100, seed: 1203 });
  });
});

describe('batched online redemption', () => {
  it('redeems each ticket once, only with the token issued for it and at its facility', async () => {
    const product = await createProduct(t.db.pool, { partnerId, facility: 'hot-park', name: 'pass', price: 1000n });
    const gate = await createGate(t.db.pool, { partnerId, facility: 'hot-park', name: 'g' });
    const zoo = await createGate(t.db.pool, { partnerId, facility: 'zoo', name: 'z' });
    const keys = new TicketKeys(t.db.pool, pdb.pool);
    const now = new Date();
    const issued = await withPartner(pdb.pool, partnerId, (tx) => issueTickets(tx, keys, { partnerId, product, date: facilityToday(now), quantity: 4, now }));
    if (!issued.ok) throw new Error('issue');
    const [a, b, c, d] = issued.value.tickets;
    const scan = (ticketId: string, qr: string | null, gateId = gate.id) => ({ partnerId, gateId, ticketId, qr, now });
    const out = await redeemOnline(pdb.pool, partnerId, [
      scan(a!.id, a!.qr), scan(a!.id, a!.qr), // the same ticket twice: once
      scan(b!.id, c!.qr), // another ticket's token: not this one
      scan(c!.id, null, zoo.id), // another facility's gate
      scan(d!.id, null), // by id
    ]);
    expect(out.map((o) => o?.ticketId ?? null)).toEqual([a!.id, null, null, null, d!.id]);
    const rows = await t.db.pool.query<{ id: string; status: string }>('SELECT id, status FROM tickets WHERE issue_id = $1 ORDER BY id', [issued.value.issueId]);
    expect(Object.fromEntries(rows.rows.map((r) => [r.id, r.status]))).toEqual({ [a!.id]: 'redeemed', [b!.id]: 'issued', [c!.id]: 'issued', [d!.id]: 'redeemed' });
    const events = await t.db.pool.query('SELECT 1 FROM ticket_events WHERE ticket_id = ANY($1) AND to_status = $2', [[a!.id, d!.id], 'redeemed']);
    expect(events.rowCount).toBe(2);
    // Another partner's acting id sees none of these tickets.
    const other = await createPartner(t.db.pool, 'cold');
    if (!other.ok) throw new Error('partner');
    expect(await redeemOnline(pdb.pool, other.value.id, [scan(b!.id, b!.qr)])).toEqual([null]);
    expect((await redeemOnline(pdb.pool, partnerId, [scan(b!.id, b!.qr)]))[0]?.ticketId).toBe(b!.id);
  });
});
