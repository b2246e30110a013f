// Properties of ticket money and redemptions under any sequence of issues, cancels, refunds, online
// redemptions and offline uploads (two gates, any gate times): after every step, once the settle
// worker has run, the partner's receivable, deferred revenue and revenue match the tickets' states,
// every posting balances, each ticket has at most one winning redemption (the earliest by gate
// time), every scan is kept, and every conflict has a case.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { createGate, createPartner, createPartnerDb, createProduct, withPartner, type PartnerDb, type Product } from '../partners/index.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { TicketKeys, closeTicket, facilityToday, issueTickets, redeem, scanOf, settleTickets, syncGate, verifyBatch } from './index.ts';

let tdb: TestDatabase;
let pdb: PartnerDb;
let keys: TicketKeys;
beforeAll(async () => {
  tdb = await createTestDatabase();
  pdb = createPartnerDb(tdb.url, { max: 4, acquireTimeoutMs: 30_000, log: silentLogger });
  keys = new TicketKeys(tdb.db.pool, pdb.pool);
});
afterAll(async () => { await pdb?.close(); await tdb?.drop(); });

type Op =
  | { kind: 'issue'; quantity: number }
  | { kind: 'close'; pick: number; to: 'cancelled' | 'refunded' }
  | { kind: 'redeem'; pick: number; gate: 0 | 1 }
  | { kind: 'offline'; picks: number[]; gate: 0 | 1; minutesAgo: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('issue' as const), quantity: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('close' as const), pick: fc.nat(), to: fc.constantFrom('cancelled' as const, 'refunded' as const) }),
  fc.record({ kind: fc.constant('redeem' as const), pick: fc.nat(), gate: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ kind: fc.constant('offline' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), gate: fc.constantFrom(0 as const, 1 as const), minutesAgo: fc.integer({ min: 1, max: 120 }) }),
);

async function checkInvariants(partnerId: string, price: bigint): Promise<void> {
  const pool = tdb.db.pool;
  while (await settleTickets(pool) > 0) { /* drain */ }
  const { rows: [s] } = await pool.query<Record<string, string>>(`
    SELECT count(*)::text AS sold, count(*) FILTER (WHERE status IN ('cancelled', 'refunded'))::text AS back,
           count(*) FILTER (WHERE status = 'redeemed')::text AS redeemed, count(*) FILTER (WHERE status = 'issued')::text AS open
    FROM tickets WHERE partner_id = $1`, [partnerId]);
  const bal = async (kind: string, owner: string) => BigInt((await pool.query<{ s: string }>(
    'SELECT coalesce(sum(e.amount), 0)::text AS s FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = $1 AND a.owner = $2', [kind, owner])).rows[0]!.s);
  const owner = `partner:${partnerId}`;
  expect(await bal('clearing', owner)).toBe(-price * (BigInt(s!.sold!) - BigInt(s!.back!)));
  expect(await bal('deferred_revenue', owner)).toBe(price * BigInt(s!.open!));
  expect(await bal('revenue', owner)).toBe(price * BigInt(s!.redeemed!));
  expect((await pool.query('SELECT 1 FROM ledger_entries GROUP BY transaction_id HAVING sum(amount) <> 0')).rowCount).toBe(0);
  // The ticket's redemption is an accepted scan of it, and no accepted scan of it is earlier.
  const wrong = await pool.query(`
    SELECT t.id FROM tickets t JOIN ticket_redemptions r ON r.id = t.redemption_id
    WHERE t.status = 'redeemed' AND (r.outcome <> 'accepted' OR r.ticket_id <> t.id OR EXISTS (
      SELECT 1 FROM ticket_redemptions o WHERE o.ticket_id = t.id AND o.gate_time < t.redeemed_gate_time AND o.outcome = 'accepted'))`);
  expect(wrong.rowCount).toBe(0);
  expect((await pool.query(`SELECT 1 FROM tickets WHERE status = 'redeemed' AND redemption_id IS NULL`)).rowCount).toBe(0);
  expect((await pool.query('SELECT 1 FROM ticket_conflicts WHERE case_id IS NULL')).rowCount).toBe(0);
}

describe('tickets (properties)', () => {
  it('keep the ledger, the winning redemption and the cases consistent after every step', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
      run += 1;
      const partner = await createPartner(tdb.db.pool, `p${run}`);
      if (!partner.ok) throw new Error('partner');
      const pid = partner.value.id;
      const price = 1000n + BigInt(run);
      const product: Product = await createProduct(tdb.db.pool, { partnerId: pid, facility: `f${run}`, name: 'pass', price });
      const gates = [await createGate(tdb.db.pool, { partnerId: pid, facility: `f${run}`, name: 'a' }), await createGate(tdb.db.pool, { partnerId: pid, facility: `f${run}`, name: 'b' })];
      const tickets: { id: string; qr: string }[] = [];
      let batch = 0;
      for (const o of ops) {
        const now = new Date();
        const pick = (n: number) => tickets[n % tickets.length];
        await withPartner(pdb.pool, pid, async (tx) => {
          if (o.kind === 'issue') {
            const r = await issueTickets(tx, keys, { partnerId: pid, product, date: facilityToday(now), quantity: o.quantity, now });
            if (r.ok) tickets.push(...r.value.tickets);
          } else if (tickets.length === 0) {
            return;
          } else if (o.kind === 'close') {
            await closeTicket(tx, pid, pick(o.pick)!.id, o.to);
          } else if (o.kind === 'redeem') {
            const scan = await scanOf(keys, { qr: pick(o.pick)!.qr }, now);
            if (!scan.ok) throw new Error(scan.error.code);
            await redeem(tx, { partnerId: pid, gateId: gates[o.gate]!.id, scan: scan.value, now });
          } else {
            const gateTime = new Date(now.getTime() - o.minutesAgo * 60_000);
            const verified = await verifyBatch(keys, o.picks.map((n) => ({ qr: pick(n)!.qr, gateTime })), now);
            const r = await syncGate(tx, { partnerId: pid, gateId: gates[o.gate]!.id, batchId: `b${batch++}`, batch: verified });
            expect(r.ok).toBe(true);
          }
        });
        await checkInvariants(pid, price);
      }
      // Nothing uploaded is dropped: every scan of every batch is a row.
      const stored = await withTx(tdb.db.pool, (tx) => tx.query(`SELECT 1 FROM ticket_redemptions WHERE partner_id = $1 AND source = 'offline'`, [pid]));
      expect(stored.rowCount).toBe(countUploaded(ops));
    }), { numRuns: 100, seed: 12_000 });
  }, 600_000);
});

/** How many scans were uploaded once at least one ticket existed (before that the step is skipped). */
function countUploaded(ops: Op[]): number {
  let issued = false;
  let n = 0;
  for (const o of ops) {
    if (o.kind === 'issue') issued = true;
    else if (o.kind === 'offline' && issued) n += o.picks.length;
  }
  return n;
}
