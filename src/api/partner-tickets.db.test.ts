import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { partnerCall, setUpPartner, type TestPartner } from '../../test/helpers/partner.ts';
import { facilityToday, keysFromManifest, settleTickets, signQr, verifyQr } from '../tickets/index.ts';

interface TicketJson { id: string; qr: string; status: string; facility: string; redemption: { gate_id: string; gate_time: string } | null }

let t: TestEngine;
let a: TestPartner;
let b: TestPartner;
let gate2: string;
let otherFacilityGate: string;
const today = () => facilityToday(new Date());

beforeAll(async () => {
  t = await startTestEngine({ config: { partners: { pool: { max: 8, acquireTimeoutMs: 60_000 }, rateLimit: { requests: 100_000, windowSeconds: 60 } } } });
  a = await setUpPartner(t.url, 'alpha', { price: '3000' });
  b = await setUpPartner(t.url, 'bravo');
  gate2 = (await admin<{ id: string }>(t.url, 'POST', '/partners/alpha/gates', { facility: a.facility, name: 'south gate' })).json.id;
  otherFacilityGate = (await admin<{ id: string }>(t.url, 'POST', '/partners/alpha/gates', { facility: 'other-zoo', name: 'zoo gate' })).json.id;
});
afterAll(async () => { await t?.close(); });

async function issue(p: TestPartner, quantity = 1, key?: string): Promise<TicketJson[]> {
  const r = await partnerCall<{ tickets: TicketJson[] }>(t.url, 'POST', '/tickets', p.key, { product_id: p.productId, date: today(), quantity }, key ? { 'idempotency-key': key } : {});
  expect(r.status).toBe(201);
  return r.json.tickets;
}
const status = async (id: string) => (await t.tdb.db.pool.query<{ status: string }>('SELECT status FROM tickets WHERE id = $1', [id])).rows[0]!.status;
const redeemQr = (qr: string, gate = a.gateId, p = a) => partnerCall<Record<string, unknown>>(t.url, 'POST', '/redemptions', p.key, { gate_id: gate, qr });

describe('issuing', () => {
  it('issues tickets whose QR a gate verifies offline with the manifest keys; Idempotency-Key replays the issue', async () => {
    const first = await partnerCall<{ issue_id: string; tickets: TicketJson[] }>(t.url, 'POST', '/tickets', a.key, { product_id: a.productId, date: today(), quantity: 3 }, { 'idempotency-key': 'issue-1' });
    expect(first.status).toBe(201);
    expect(first.json.tickets).toHaveLength(3);
    const again = await partnerCall<{ issue_id: string }>(t.url, 'POST', '/tickets', a.key, { product_id: a.productId, date: today(), quantity: 3 }, { 'idempotency-key': 'issue-1' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json.issue_id).toBe(first.json.issue_id);
    expect((await t.tdb.db.pool.query('SELECT 1 FROM tickets WHERE issue_id = $1', [first.json.issue_id])).rowCount).toBe(3);

    const m = await partnerCall<{ keys: JWK[]; revoked: string[] }>(t.url, 'GET', `/gates/${a.gateId}/manifest`, a.key);
    expect(m.status).toBe(200);
    const verify = keysFromManifest(m.json.keys);
    for (const tk of first.json.tickets) {
      expect(tk.qr.length).toBeLessThan(400);
      const v = await verifyQr(tk.qr, verify, new Date());
      expect(v).toMatchObject({ ok: true, value: { t: tk.id, p: a.productId, f: a.facility } });
    }
  });

  it('refuses a past date and an unknown product', async () => {
    expect((await partnerCall(t.url, 'POST', '/tickets', a.key, { product_id: a.productId, date: '2020-01-01' })).json).toMatchObject({ status: 422, code: 'invalid_date' });
    expect((await partnerCall(t.url, 'POST', '/tickets', a.key, { product_id: '00000000-0000-7000-8000-000000000000', date: today() })).json).toMatchObject({ status: 404, code: 'product_not_found' });
  });
});

describe('redeeming online', () => {
  it('lets exactly one of 50 concurrent redeems of a ticket win; the others get 409 already_redeemed with when and where', async () => {
    const [tk] = await issue(a);
    const all = await Promise.all(Array.from({ length: 50 }, () => redeemQr(tk!.qr)));
    const won = all.filter((r) => r.status === 201);
    const lost = all.filter((r) => r.status === 409);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(49);
    for (const r of lost) expect(r.json).toMatchObject({ code: 'already_redeemed', gate_id: a.gateId, redeemed_at: won[0]!.json.redeemed_at });
    expect((await t.tdb.db.pool.query('SELECT 1 FROM ticket_redemptions WHERE ticket_id = $1', [tk!.id])).rowCount).toBe(1);
    expect((await t.tdb.db.pool.query(`SELECT 1 FROM ticket_events WHERE ticket_id = $1 AND posting = 'redeemed'`, [tk!.id])).rowCount).toBe(1);
  });

  it('redeems by ticket id too', async () => {
    const [tk] = await issue(a);
    const r = await partnerCall(t.url, 'POST', '/redemptions', a.key, { gate_id: gate2, ticket_id: tk!.id });
    expect(r.status).toBe(201);
    expect(await status(tk!.id)).toBe('redeemed');
  });

  it('refuses a forged, expired or other facility\'s QR with a stable code and changes nothing', async () => {
    const [tk] = await issue(a);
    const [head, payload] = tk!.qr.split('.');
    // Another key signing the same claims under seigo's kid: a forgery.
    const forged = await signQr(JSON.parse(Buffer.from(payload!, 'base64url').toString()), JSON.parse(Buffer.from(head!, 'base64url').toString()).kid, generateKeyPairSync('ed25519').privateKey);
    expect((await redeemQr(forged)).json).toMatchObject({ status: 422, code: 'qr_invalid' });
    // A payload edited after signing.
    const edited = `${head}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), f: 'x' })).toString('base64url')}.${tk!.qr.split('.')[2]}`;
    expect((await redeemQr(edited)).json).toMatchObject({ status: 422, code: 'qr_invalid' });
    expect((await redeemQr('not-a-token')).json).toMatchObject({ status: 422, code: 'qr_invalid' });
    // seigo's own key, but validity over: expired.
    const key = (await t.tdb.db.pool.query<{ kid: string; private_pkcs8: Buffer }>('SELECT kid, private_pkcs8 FROM ticket_signing_keys ORDER BY kid DESC LIMIT 1')).rows[0]!;
    const past = Math.floor(Date.now() / 1000) - 86_400;
    const expired = await signQr({ t: tk!.id, p: a.productId, f: a.facility, nbf: past - 86_400, exp: past }, key.kid, createPrivateKey({ key: key.private_pkcs8, format: 'der', type: 'pkcs8' }));
    expect((await redeemQr(expired)).json).toMatchObject({ status: 422, code: 'qr_expired' });
    expect((await redeemQr(tk!.qr, otherFacilityGate)).json).toMatchObject({ status: 422, code: 'wrong_facility' });
    expect(await status(tk!.id)).toBe('issued');
    expect((await t.tdb.db.pool.query('SELECT 1 FROM ticket_redemptions WHERE ticket_id = $1', [tk!.id])).rowCount).toBe(0);
  });
});

describe('cancel and refund', () => {
  it('cancels and refunds unused tickets only; gates then refuse them and the manifest lists them', async () => {
    const [c, r, used] = await issue(a, 3);
    expect((await partnerCall(t.url, 'POST', `/tickets/${c!.id}/cancel`, a.key)).json).toMatchObject({ status: 'cancelled' });
    expect((await partnerCall(t.url, 'POST', `/tickets/${r!.id}/refund`, a.key)).json).toMatchObject({ status: 'refunded' });
    expect((await redeemQr(c!.qr)).json).toMatchObject({ status: 409, code: 'ticket_cancelled' });
    expect((await redeemQr(r!.qr)).json).toMatchObject({ status: 409, code: 'ticket_refunded' });
    expect((await redeemQr(used!.qr)).status).toBe(201);
    expect((await partnerCall(t.url, 'POST', `/tickets/${used!.id}/refund`, a.key)).json).toMatchObject({ status: 409, code: 'ticket_not_unused', ticket_status: 'redeemed' });
    expect((await partnerCall(t.url, 'POST', `/tickets/${c!.id}/refund`, a.key)).json).toMatchObject({ status: 409, code: 'ticket_not_unused' });
    const m = await partnerCall<{ revoked: string[] }>(t.url, 'GET', `/gates/${a.gateId}/manifest?date=${today()}`, a.key);
    expect(m.json.revoked).toEqual(expect.arrayContaining([c!.id, r!.id]));
    expect(m.json.revoked).not.toContain(used!.id);
  });
});

describe('offline gates', () => {
  const sync = (gate: string, batch: string, redemptions: unknown[], p = a) => partnerCall<Record<string, unknown>>(t.url, 'POST', `/gates/${gate}/sync`, p.key, { batch_id: batch, redemptions });

  it('keeps the earlier redemption by gate time, records the other as a conflict with a case, and replays a batch', async () => {
    const [x, y] = await issue(a, 2);
    const t1 = new Date(Date.now() - 60_000).toISOString();
    const t2 = new Date(Date.now() - 30_000).toISOString();
    // Gate 1 scanned x later (t2) but uploads first; gate 2 scanned it earlier (t1).
    const up1 = await sync(a.gateId, 'g1-b1', [{ qr: x!.qr, gate_time: t2 }, { qr: y!.qr, gate_time: t2 }]);
    expect(up1.json).toMatchObject({ received: 2, counts: { accepted: 2, conflict: 0 } });
    const up2 = await sync(gate2, 'g2-b1', [{ qr: x!.qr, gate_time: t1 }]);
    expect(up2.json).toMatchObject({ received: 1, counts: { accepted: 1 } });
    const got = await partnerCall<TicketJson>(t.url, 'GET', `/tickets/${x!.id}`, a.key);
    expect(got.json.redemption).toMatchObject({ gate_id: gate2, gate_time: t1 });

    // The same batch again: the first answer, nothing applied twice.
    const replay = await sync(gate2, 'g2-b1', [{ qr: x!.qr, gate_time: t1 }]);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json).toEqual(up2.json);
    expect((await sync(gate2, 'g2-b1', [{ qr: y!.qr, gate_time: t1 }])).json).toMatchObject({ status: 422, code: 'batch_mismatch' });

    // Every scan kept: two for x (one accepted, one conflict), one for y.
    const rows = await t.tdb.db.pool.query<{ outcome: string }>('SELECT outcome FROM ticket_redemptions WHERE ticket_id = $1 ORDER BY gate_time', [x!.id]);
    expect(rows.rows.map((r) => r.outcome)).toEqual(['accepted', 'conflict']);
    await settleTickets(t.tdb.db.pool);
    const conflicts = await t.tdb.db.pool.query<{ case_id: string | null }>('SELECT case_id FROM ticket_conflicts WHERE ticket_id = $1', [x!.id]);
    expect(conflicts.rows).toHaveLength(1);
    const c = await admin<{ cause: string; subject: unknown; status: string }>(t.url, 'GET', `/cases/${conflicts.rows[0]!.case_id}`);
    expect(c.json).toMatchObject({ cause: 'ticket_double_redemption', subject: { type: 'ticket', id: x!.id }, status: 'open' });
  });

  it('records a later scan elsewhere as a conflict, a rescan at the same gate as a duplicate, and one after a refund as a conflict', async () => {
    const [x, r] = await issue(a, 2);
    expect((await redeemQr(x!.qr)).status).toBe(201);
    await partnerCall(t.url, 'POST', `/tickets/${r!.id}/refund`, a.key);
    const later = new Date(Date.now() + 1000).toISOString();
    const up = await sync(gate2, 'g2-b2', [{ qr: x!.qr, gate_time: later }, { qr: r!.qr, gate_time: later }]);
    expect(up.json).toMatchObject({ counts: { conflict: 2 } });
    const same = await sync(a.gateId, 'g1-b2', [{ ticket_id: x!.id, gate_time: later }]);
    expect(same.json).toMatchObject({ counts: { duplicate: 1 } });
    await settleTickets(t.tdb.db.pool);
    const open = await t.tdb.db.pool.query('SELECT 1 FROM ticket_conflicts WHERE ticket_id = ANY($1) AND case_id IS NOT NULL', [[x!.id, r!.id]]);
    expect(open.rowCount).toBe(2);
  });

  it('refuses a malformed batch whole and applies nothing of it', async () => {
    const [x] = await issue(a);
    const before = (await t.tdb.db.pool.query('SELECT 1 FROM ticket_redemptions')).rowCount;
    const now = new Date().toISOString();
    const bad = await sync(a.gateId, 'bad-1', [{ qr: x!.qr, gate_time: now }, { qr: 'forged.qr.token', gate_time: now }]);
    expect(bad.json).toMatchObject({ status: 422, code: 'invalid_batch', errors: [{ index: 1, code: 'qr_invalid' }] });
    const future = await sync(a.gateId, 'bad-2', [{ qr: x!.qr, gate_time: new Date(Date.now() + 3_600_000).toISOString() }]);
    expect(future.json).toMatchObject({ code: 'invalid_batch', errors: [{ index: 0, code: 'gate_time_in_future' }] });
    expect((await sync(otherFacilityGate, 'bad-3', [{ qr: x!.qr, gate_time: now }])).json).toMatchObject({ code: 'invalid_batch', errors: [{ code: 'wrong_facility' }] });
    expect((await sync(a.gateId, 'bad-4', [{ gate_time: now }])).json).toMatchObject({ status: 400, code: 'invalid_request' });
    expect((await t.tdb.db.pool.query('SELECT 1 FROM ticket_redemptions')).rowCount).toBe(before);
    expect(await status(x!.id)).toBe('issued');
    // The batch id was not used up by the refusal.
    expect((await sync(a.gateId, 'bad-1', [{ qr: x!.qr, gate_time: now }])).json).toMatchObject({ counts: { accepted: 1 } });
  });
});

describe('isolation and scopes on every ticket route', () => {
  it('answers 404 for another partner\'s ticket, product and gate, and changes nothing', async () => {
    const [tk] = await issue(a);
    const now = new Date().toISOString();
    const calls: [string, 'GET' | 'POST', string, unknown?][] = [
      ['ticket_not_found', 'GET', `/tickets/${tk!.id}`],
      ['ticket_not_found', 'POST', `/tickets/${tk!.id}/cancel`],
      ['ticket_not_found', 'POST', `/tickets/${tk!.id}/refund`],
      ['product_not_found', 'POST', '/tickets', { product_id: a.productId, date: today() }],
      ['gate_not_found', 'POST', '/redemptions', { gate_id: a.gateId, ticket_id: b.productId }],
      ['ticket_not_found', 'POST', '/redemptions', { gate_id: b.gateId, ticket_id: tk!.id }],
      ['gate_not_found', 'GET', `/gates/${a.gateId}/manifest`],
      ['gate_not_found', 'POST', `/gates/${a.gateId}/sync`, { batch_id: 'x', redemptions: [{ ticket_id: tk!.id, gate_time: now }] }],
    ];
    for (const [code, method, path, body] of calls) {
      const r = await partnerCall(t.url, method, path, b.key, body);
      expect({ path, status: r.status, code: r.json.code }).toEqual({ path, status: 404, code });
    }
    // B's own gate, A's QR (another partner's ticket at the same kind of facility): not found either.
    const bFacilityQr = await partnerCall(t.url, 'POST', '/redemptions', b.key, { gate_id: b.gateId, qr: tk!.qr });
    expect(bFacilityQr.status).toBeGreaterThanOrEqual(400);
    expect(bFacilityQr.status).toBeLessThan(500);
    expect(await status(tk!.id)).toBe('issued');
  });

  it('answers 403 for a key without the route\'s scope', async () => {
    const k = (await admin<{ key: string }>(t.url, 'POST', '/partners/alpha/keys', { scopes: ['tickets:read'] })).json.key;
    const [tk] = await issue(a);
    const now = new Date().toISOString();
    const calls: [ 'GET' | 'POST', string, unknown?][] = [
      ['POST', '/tickets', { product_id: a.productId, date: today() }],
      ['POST', `/tickets/${tk!.id}/cancel`],
      ['POST', `/tickets/${tk!.id}/refund`],
      ['POST', '/redemptions', { gate_id: a.gateId, qr: tk!.qr }],
      ['GET', `/gates/${a.gateId}/manifest`],
      ['POST', `/gates/${a.gateId}/sync`, { batch_id: 'x', redemptions: [{ ticket_id: tk!.id, gate_time: now }] }],
    ];
    for (const [method, path, body] of calls) expect((await partnerCall(t.url, method, path, k, body)).json).toMatchObject({ status: 403, code: 'insufficient_scope' });
    expect((await partnerCall(t.url, 'GET', `/tickets/${tk!.id}`, k)).status).toBe(200);
    expect((await partnerCall(t.url, 'GET', `/tickets/${tk!.id}`, null)).status).toBe(401);
  });
});

describe('ledger', () => {
  it('posts sales to deferred revenue, refunds back, redemptions to revenue, balanced, once each', async () => {
    const c = await setUpPartner(t.url, 'charlie', { price: '1500' });
    const tks = await (async () => {
      const r = await partnerCall<{ tickets: TicketJson[] }>(t.url, 'POST', '/tickets', c.key, { product_id: c.productId, date: today(), quantity: 4 });
      return r.json.tickets;
    })();
    await partnerCall(t.url, 'POST', `/tickets/${tks[0]!.id}/refund`, c.key);
    await partnerCall(t.url, 'POST', '/redemptions', c.key, { gate_id: c.gateId, qr: tks[1]!.qr });
    await partnerCall(t.url, 'POST', '/redemptions', c.key, { gate_id: c.gateId, qr: tks[2]!.qr });
    while (await settleTickets(t.tdb.db.pool) > 0) { /* drain */ }
    expect(await settleTickets(t.tdb.db.pool)).toBe(0);
    const bal = async (kind: string, owner: string) => (await t.tdb.db.pool.query<{ s: string }>(
      `SELECT coalesce(sum(e.amount), 0)::text AS s FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = $1 AND a.owner = $2`, [kind, owner])).rows[0]!.s;
    expect(await bal('clearing', `partner:${c.id}`)).toBe(String(-1500 * 3));
    expect(await bal('deferred_revenue', `partner:${c.id}`)).toBe(String(1500));
    const posted = await t.tdb.db.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ledger_transactions WHERE idempotency_key LIKE 'ticket:%' AND idempotency_key LIKE ANY($1)`,
      [tks.map((x) => `ticket:${x.id}:%`)]);
    expect(posted.rows[0]!.n).toBe('7'); // 4 sold, 1 refunded, 2 redeemed
    const unbalanced = await t.tdb.db.pool.query(`SELECT transaction_id FROM ledger_entries GROUP BY transaction_id HAVING sum(amount) <> 0`);
    expect(unbalanced.rowCount).toBe(0);
  });
});

describe('the worker', () => {
  it('posts ticket events and opens conflict cases on its own (tickets.settle loop)', async () => {
    const d = await setUpPartner(t.url, 'delta', { price: '700' });
    const g2 = (await admin<{ id: string }>(t.url, 'POST', '/partners/delta/gates', { facility: d.facility, name: 'g2' })).json.id;
    const r = await partnerCall<{ tickets: TicketJson[] }>(t.url, 'POST', '/tickets', d.key, { product_id: d.productId, date: today(), quantity: 1 });
    const tk = r.json.tickets[0]!;
    const at = new Date(Date.now() - 60_000).toISOString();
    await partnerCall(t.url, 'POST', `/gates/${d.gateId}/sync`, d.key, { batch_id: 'w1', redemptions: [{ qr: tk.qr, gate_time: at }] });
    await partnerCall(t.url, 'POST', `/gates/${g2}/sync`, d.key, { batch_id: 'w2', redemptions: [{ qr: tk.qr, gate_time: at }] });
    await t.startWorker();
    await eventually(async () => {
      const e = await t.tdb.db.pool.query('SELECT 1 FROM ticket_events WHERE ticket_id = $1 AND posting IS NOT NULL AND posted_at IS NULL', [tk.id]);
      const c = await t.tdb.db.pool.query('SELECT 1 FROM ticket_conflicts WHERE ticket_id = $1 AND case_id IS NOT NULL', [tk.id]);
      return e.rowCount === 0 && c.rowCount === 1;
    });
  });
});
