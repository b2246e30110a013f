import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartner } from '../partners/index.ts';
import { withTx } from '../kernel/db.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import {
  decideChange, initialCatalog, pullDue, pullMaster, setRule, setSource, startMasterSimulator, MasterdataInputError, type MasterSimulator,
} from './index.ts';

let tdb: TestDatabase;
let sim: MasterSimulator;
beforeAll(async () => {
  tdb = await createTestDatabase();
  sim = await startMasterSimulator();
});
afterAll(async () => {
  await sim.close();
  await tdb.drop();
});

async function partner(name: string, products: number) {
  const p = await createPartner(tdb.db.pool, name);
  if (!p.ok) throw new Error('partner');
  sim.partners.set(name, { name, items: initialCatalog(name, products, 7), faults: [] });
  await setSource(tdb.db.pool, p.value.id, { kind: 'http', url: sim.feedUrl(name), intervalMs: 3_600_000 });
  return p.value;
}
const q = <T extends object>(sql: string, v: unknown[] = []) => tdb.db.pool.query<T>(sql, v).then((r) => r.rows);
const waiting = (partnerId: string) => q<{ id: string; product_code: string; field: string; after: unknown; made_by: string }>(
  `SELECT id, product_code, field, after, made_by FROM masterdata_changes WHERE partner_id = $1 AND status = 'waiting' ORDER BY product_code, field`, [partnerId]);
async function approveAll(partnerId: string, actor: string) {
  for (const w of await waiting(partnerId)) {
    const r = await withTx(tdb.db.pool, (tx) => decideChange(tx, w.id, 'approved', actor, 'initial load'));
    expect(r.ok).toBe(true);
  }
}

describe('pull and diff', () => {
  it('stages a partner API feed, records added plans as waiting, and applies them once approved by someone else', async () => {
    const p = await partner('alpha', 25);
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'manual', actor: 'importer' });
    expect(pull.status).toBe('succeeded');
    expect(pull.counts).toMatchObject({ rows: 25, added: 25, removed: 0, changed: 0, waiting: 25 });
    expect(await q(`SELECT 1 FROM masterdata_items WHERE partner_id = $1`, [p.id])).toHaveLength(0);

    const first = (await waiting(p.id))[0]!;
    const self = await withTx(tdb.db.pool, (tx) => decideChange(tx, first.id, 'approved', 'importer', 'mine'));
    expect(self).toEqual({ ok: false, error: { code: 'maker_cannot_approve', id: first.id, madeBy: 'importer' } });

    await approveAll(p.id, 'checker');
    const items = await q<{ n: number }>(`SELECT count(*)::int AS n FROM masterdata_items i JOIN partner_products pp ON pp.id = i.product_id AND pp.price = i.price WHERE i.partner_id = $1`, [p.id]);
    expect(items[0]!.n).toBe(25);
    const decided = await q<{ decided_by: string; reason: string }>(`SELECT DISTINCT decided_by, reason FROM masterdata_changes WHERE partner_id = $1`, [p.id]);
    expect(decided).toEqual([{ decided_by: 'checker', reason: 'initial load' }]);
  });

  it('diffs field by field: text applies at once, a price waits; a later pull supersedes a waiting change and says so', async () => {
    const p = await partner('beta', 10);
    await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'manual', actor: 'importer' });
    await approveAll(p.id, 'checker');
    const items = sim.partners.get('beta')!.items;
    items[0]!.description = 'new words';
    items[0]!.price = '1234';
    items.splice(9, 1);
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'schedule', actor: 'schedule' });
    expect(pull.counts).toMatchObject({ added: 0, removed: 1, changed: 1, applied: 1, waiting: 2 });
    const desc = await q<{ description: string; price: string }>(`SELECT description, price::text FROM masterdata_items WHERE product_code = 'beta-p0'`);
    expect(desc[0]).toMatchObject({ description: 'new words' });
    expect(desc[0]!.price).not.toBe('1234');
    const changes = await q<{ field: string; before: unknown; after: unknown; status: string }>(
      `SELECT field, before, after, status FROM masterdata_changes WHERE pull_id = $1 ORDER BY product_code, field`, [pull.id]);
    expect(changes).toContainEqual({ field: 'price', before: Number(desc[0]!.price), after: 1234, status: 'waiting' });
    expect(changes).toContainEqual(expect.objectContaining({ field: 'description', after: 'new words', status: 'applied' }));

    // The same again: the waiting change stays waiting (not asked twice).
    const again = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'schedule', actor: 'schedule' });
    expect(again.counts).toMatchObject({ kept_waiting: 2, superseded: 0, waiting: 0 });
    // The partner moves the price again: the old change is superseded, pointing at the new one.
    items[0]!.price = '1300';
    const third = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'schedule', actor: 'schedule' });
    expect(third.counts).toMatchObject({ superseded: 1, waiting: 1 });
    const old = await q<{ status: string; superseded_by: string; reason: string }>(
      `SELECT status, superseded_by, reason FROM masterdata_changes WHERE pull_id = $1 AND field = 'price'`, [pull.id]);
    const next = await q<{ id: string }>(`SELECT id FROM masterdata_changes WHERE pull_id = $1 AND field = 'price'`, [third.id]);
    expect(old[0]).toMatchObject({ status: 'superseded', superseded_by: next[0]!.id });
    expect(old[0]!.reason).toContain('the partner now sends 1300');
  });

  it('applies a change a rule covers at once and records the rule; outside the range it waits', async () => {
    const p = await partner('gamma', 3);
    await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'manual', actor: 'importer' });
    await approveAll(p.id, 'checker');
    await setRule(tdb.db.pool, p.id, 'price_within', { pct: 5 }, true, 'boss');
    await setRule(tdb.db.pool, p.id, 'capacity_change', {}, true, 'boss');
    await tdb.db.pool.query(`UPDATE masterdata_items SET min_price = 0, max_price = 1000000 WHERE partner_id = $1 AND product_code <> 'gamma-p2'`, [p.id]);
    const items = sim.partners.get('gamma')!.items;
    const bump = (i: number, f: number) => { items[i]!.price = String(Math.round(Number(items[i]!.price) * f)); };
    bump(0, 1.04); bump(1, 1.2); bump(2, 1.01);
    items[0]!.capacity = 5;
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'schedule', actor: 'schedule' });
    const rows = await q<{ product_code: string; field: string; status: string; rule: string | null }>(
      `SELECT product_code, field, status, rule FROM masterdata_changes WHERE pull_id = $1 ORDER BY product_code, field`, [pull.id]);
    expect(rows).toEqual([
      { product_code: 'gamma-p0', field: 'capacity', status: 'applied_by_rule', rule: 'capacity_change' },
      { product_code: 'gamma-p0', field: 'price', status: 'applied_by_rule', rule: 'price_within' },
      { product_code: 'gamma-p1', field: 'price', status: 'waiting', rule: null },
      // Within 1 % but no allowed range on our side: it waits.
      { product_code: 'gamma-p2', field: 'price', status: 'waiting', rule: null },
    ]);
    const pp = await q<{ price: string }>(`SELECT pp.price::text FROM partner_products pp JOIN masterdata_items i ON i.product_id = pp.id WHERE i.product_code = 'gamma-p0'`);
    expect(pp[0]!.price).toBe(items[0]!.price);
  });
});

describe('bad feeds', () => {
  it.each([
    ['malformed', /row 2: .*price twelve is not an amount/],
    ['duplicate', /row 4: duplicate of line 1/],
    ['impossible_price', /row 2: impossible price -500: negative/],
  ] as const)('a feed with a %s row fails whole, with the reason per row, and changes nothing', async (fault, reason) => {
    const p = await partner(`bad-${fault.replace('_', '-')}`, 3);
    sim.partners.get(p.name)!.faults = [fault];
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'manual', actor: 'importer' });
    expect(pull.status).toBe('failed');
    const text = pull.rowErrors!.map((e) => `row ${e.row}: ${e.reasons.join('; ')}`).join('\n');
    expect(text).toMatch(reason);
    expect(await q(`SELECT 1 FROM masterdata_changes WHERE partner_id = $1`, [p.id])).toHaveLength(0);
    const rec = await q<{ status: string; row_errors: unknown[] }>(`SELECT status, row_errors FROM masterdata_pulls WHERE id = $1`, [pull.id]);
    expect(rec[0]!.status).toBe('failed');
    expect(rec[0]!.row_errors.length).toBeGreaterThan(0);
  });

  it('an outage fails the pull with the reason', async () => {
    const p = await partner('down', 2);
    sim.partners.get('down')!.faults = ['outage'];
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.id, trigger: 'schedule', actor: 'schedule' });
    expect(pull).toMatchObject({ status: 'failed', error: expect.stringContaining('HTTP 503') });
  });
});

describe('CSV uploads', () => {
  const mapping = {
    columns: { product_code: '商品コード', name: '商品名', price: '大人料金', capacity: '定員', description: '説明' },
    prices: { adult: '大人料金', child: '子供料金' },
    defaults: { plan_code: 'standard', facility: 'main', tax_rate: '10' },
    ignore: ['備考'],
  };
  it('reads a file with its mapping into a change set', async () => {
    const p = await createPartner(tdb.db.pool, 'csvco');
    if (!p.ok) throw new Error('partner');
    const csv = '商品コード,商品名,大人料金,子供料金,定員,説明,備考\nA1,入園券,1500,800,300,"説明, 一"," "\nA2,年間パス,9000,,50,,\n';
    const pull = await pullMaster({ pool: tdb.db.pool }, { partnerId: p.value.id, trigger: 'upload', actor: 'uploader', csv, mapping });
    expect(pull).toMatchObject({ status: 'succeeded', counts: { rows: 2, added: 2 } });
    const after = await q<{ after: { prices: unknown; description: string } }>(`SELECT after FROM masterdata_changes WHERE pull_id = $1 AND product_code = 'A1'`, [pull.id]);
    expect(after[0]!.after).toMatchObject({ description: '説明, 一', prices: [{ from: null, age_group: 'adult', amount: '1500' }, { from: null, age_group: 'child', amount: '800' }] });
  });

  it('names an unknown column', async () => {
    const p = await createPartner(tdb.db.pool, 'csvco2');
    if (!p.ok) throw new Error('partner');
    const csv = '商品コード,商品名,大人料金,子供料金,定員,説明,備考,新しい列\nA1,入園券,1500,800,300,x,,y\n';
    await expect(pullMaster({ pool: tdb.db.pool }, { partnerId: p.value.id, trigger: 'upload', actor: 'u', csv, mapping }))
      .rejects.toThrow(new MasterdataInputError('invalid_csv', 'unknown column "新しい列": not in the mapping (map it in columns or prices, or list it in ignore)'));
  });
});

describe('scheduled pulls', () => {
  it('pulls each due partner once and moves its next pull by its interval', async () => {
    const p = await partner('sched', 2);
    await tdb.db.pool.query(`UPDATE masterdata_sources SET next_pull_at = now() + interval '1 hour' WHERE partner_id <> $1`, [p.id]);
    const now = new Date(Date.now() + 1000);
    const [a, b] = await Promise.all([pullDue({ pool: tdb.db.pool }, now), pullDue({ pool: tdb.db.pool }, now)]);
    expect([...a!, ...b!].map((x) => x.partnerId)).toEqual([p.id]);
    const src = await q<{ next: Date }>(`SELECT next_pull_at AS next FROM masterdata_sources WHERE partner_id = $1`, [p.id]);
    expect(src[0]!.next.getTime()).toBe(now.getTime() + 3_600_000);
    expect(await pullDue({ pool: tdb.db.pool }, now)).toEqual([]);
  });
});
