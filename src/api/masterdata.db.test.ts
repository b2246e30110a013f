import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { getProduct } from '../partners/index.ts';
import { facilityToday, issueTickets } from '../tickets/index.ts';
import { initialCatalog, startMasterSimulator, type MasterSimulator } from '../masterdata/index.ts';
import { OPERATOR_TOKEN, VIEWER_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { admin } from '../../test/helpers/admin.ts';

const CHECKER_TOKEN = 'test-checker-token-0123456789ab';
let t: TestEngine;
let sim: MasterSimulator;
beforeAll(async () => {
  sim = await startMasterSimulator();
  t = await startTestEngine({
    config: {
      adminTokens: [
        { name: 'op', token: OPERATOR_TOKEN, role: 'operator' }, { name: 'checker', token: CHECKER_TOKEN, role: 'operator' },
        { name: 'view', token: VIEWER_TOKEN, role: 'viewer' },
      ],
    },
  });
});
afterAll(async () => {
  await t.close();
  await sim.close();
});

type Change = { id: string; product_code: string; field: string; status: string; decided_by: string | null; reason: string | null; made_by: string };

describe('/admin/v1/masterdata', () => {
  it('pulls on demand, refuses self-approval, applies a price for new tickets only, and dry-runs the rules', async () => {
    expect((await admin(t.url, 'POST', '/partners', { name: 'zoo' })).status).toBe(201);
    sim.partners.set('zoo', { name: 'zoo', items: initialCatalog('zoo', 4, 3), faults: [] });
    const src = await admin(t.url, 'POST', '/masterdata/zoo/source', { kind: 'http', url: sim.feedUrl('zoo'), interval_ms: 3_600_000 });
    expect(src).toMatchObject({ status: 200, json: { kind: 'http', interval_ms: 3_600_000 } });

    const pull = await admin<{ id: string; counts: { added: number } }>(t.url, 'POST', '/masterdata/zoo/pulls', {});
    expect(pull).toMatchObject({ status: 201, json: { counts: { added: 4, waiting: 4 } } });
    const waiting = await admin<{ data: Change[] }>(t.url, 'GET', '/masterdata/zoo/changes?status=waiting');
    expect(waiting.json.data.map((c) => c.made_by)).toEqual(['op', 'op', 'op', 'op']);
    const self = await admin(t.url, 'POST', `/masterdata/changes/${waiting.json.data[0]!.id}/approve`, {});
    expect(self).toMatchObject({ status: 403, json: { code: 'maker_cannot_approve' } });
    for (const c of waiting.json.data) {
      expect((await admin(t.url, 'POST', `/masterdata/changes/${c.id}/approve`, { reason: 'checked the contract' }, CHECKER_TOKEN)).status).toBe(200);
    }
    const again = await admin(t.url, 'POST', `/masterdata/changes/${waiting.json.data[0]!.id}/reject`, { reason: 'late' }, CHECKER_TOKEN);
    expect(again).toMatchObject({ status: 409, json: { code: 'change_not_waiting' } });

    // A ticket sold at today's price keeps it when a new price is approved.
    const pool = t.engine.db.pool;
    const item = (await pool.query<{ product_id: string; partner_id: string; price: string }>(
      `SELECT product_id, partner_id, price::text FROM masterdata_items WHERE product_code = 'zoo-p0'`)).rows[0]!;
    const sold = await withTx(pool, async (tx) => issueTickets(tx, t.engine.ticketKeys, {
      partnerId: item.partner_id, product: await getProduct(tx, item.product_id), date: facilityToday(new Date()), quantity: 1, now: new Date(),
    }));
    if (!sold.ok) throw new Error(JSON.stringify(sold.error));
    const ticketId = sold.value.tickets[0]!.id;
    sim.partners.get('zoo')!.items[0]!.price = String(Number(item.price) * 2);
    const second = await admin<{ id: string }>(t.url, 'POST', '/masterdata/zoo/pulls', {}, CHECKER_TOKEN);
    const detail = await admin<{ products: { product_code: string; changes: Change[] }[] }>(t.url, 'GET', `/masterdata/pulls/${second.json.id}`);
    expect(detail.json.products.map((p) => p.product_code)).toEqual(['zoo-p0']);
    const priceChange = detail.json.products[0]!.changes.find((c) => c.field === 'price')!;
    expect(priceChange.status).toBe('waiting');
    expect((await admin(t.url, 'POST', `/masterdata/changes/${priceChange.id}/approve`, {}, CHECKER_TOKEN)).json).toMatchObject({ code: 'maker_cannot_approve' });
    const ok = await admin<Change>(t.url, 'POST', `/masterdata/changes/${priceChange.id}/approve`, { reason: 'new season' });
    expect(ok.json).toMatchObject({ status: 'approved', decided_by: 'op', reason: 'new season' });
    const prices = await pool.query<{ ticket: string; catalog: string }>(
      `SELECT t.price::text AS ticket, pp.price::text AS catalog FROM tickets t JOIN partner_products pp ON pp.id = t.product_id WHERE t.id = $1`, [ticketId]);
    expect(prices.rows[0]).toEqual({ ticket: item.price, catalog: String(Number(item.price) * 2) });

    expect((await admin(t.url, 'POST', '/masterdata/zoo/rules/price_within', { params: { pct: 200 } })).status).toBe(400);
    expect((await admin(t.url, 'POST', '/masterdata/zoo/rules/capacity_change', { params: {} })).status).toBe(200);
    sim.partners.get('zoo')!.items[1]!.capacity = 1;
    await admin(t.url, 'POST', '/masterdata/zoo/pulls', {});
    const dry = await admin(t.url, 'GET', '/masterdata/zoo/rules/dry-run?days=30');
    expect(dry.json).toMatchObject({ sensitive_changes: 6, by_rule: { capacity_change: 1 }, covered_by_any: 1 });
  });

  it('answers a refused feed with a 422 naming each bad row, and an unknown CSV column by name', async () => {
    await admin(t.url, 'POST', '/partners', { name: 'aquarium' });
    sim.partners.set('aquarium', { name: 'aquarium', items: initialCatalog('aquarium', 3, 4), faults: ['impossible_price'] });
    await admin(t.url, 'POST', '/masterdata/aquarium/source', { kind: 'http', url: sim.feedUrl('aquarium') });
    const r = await admin<{ code: string; rows: { row: number; reasons: string[] }[] }>(t.url, 'POST', '/masterdata/aquarium/pulls', {});
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ code: 'master_feed_refused', rows: [{ row: 2, reasons: ['impossible price -500: negative'] }] });

    const mapping = { columns: { product_code: 'code', name: 'name', price: 'price' }, defaults: { plan_code: 'std', facility: 'main', tax_rate: '10' } };
    const bad = await admin(t.url, 'POST', '/masterdata/aquarium/pulls', { csv: 'code,name,price,colour\nA,B,100,red\n', mapping });
    expect(bad).toMatchObject({ status: 400, json: { code: 'invalid_csv', detail: expect.stringContaining('unknown column "colour"') } });
  });
});
