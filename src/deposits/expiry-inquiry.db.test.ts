// The expiry inquiry: konbini / Pay-easy reservations past their deadline whose notice KOMOJU sent
// but we never received are asked about at the simulator (real HTTP), and the answer goes through
// the same intake and handler as the webhook: expired → the hold released; paid → credited once,
// even when the lost webhook turns up afterwards.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance } from '../ledger/index.ts';
import { sign, type KomojuSimulator } from '../providers/komoju/index.ts';
import type { TestEngine } from '../../test/helpers/engine.ts';
import { startKomojuEngine, type KomojuEngine } from '../../test/helpers/komoju.ts';
import type { Deposit } from './state.ts';
import { createExpiryInquiry } from './expiry-inquiry.ts';

const WEBHOOK_SECRET = 'komoju_whsec_seigo_expiry';

let k: KomojuEngine;
let t: TestEngine;
let sim: KomojuSimulator;

beforeAll(async () => {
  k = await startKomojuEngine({ seed: 5, webhookSecret: WEBHOOK_SECRET, config: { deposits: { expiryInquiryAfterMs: 0 } } });
  ({ t, sim } = k);
});
afterAll(async () => { await k?.close(); });

const pool = () => t.tdb.db.pool;

async function reserve(user: string, amount: bigint, method: 'konbini' | 'payeasy' = 'konbini'): Promise<Deposit> {
  const r = await t.engine.deposits.createReservationDeposit({ userId: user, method, amount, email: 'hanako@example.jp', ...(method === 'konbini' ? { store: 'seven-eleven' } : {}) });
  if (!r.ok) throw new Error(r.error.code);
  await sim.idle();
  await t.engine.inbox.runOnce(100);
  expect(r.value.status).toBe('awaiting_payment');
  return r.value;
}

/** Runs `fn` with KOMOJU's webhooks lost on the way. */
async function lost(fn: () => void): Promise<void> {
  const url = sim.webhookUrl;
  sim.webhookUrl = undefined;
  try {
    fn();
    await sim.idle();
  } finally {
    sim.webhookUrl = url;
  }
}

async function pastDeadline(id: string): Promise<void> {
  await pool().query(`UPDATE deposits SET payment_deadline = now() - interval '1 hour' WHERE id = $1`, [id]);
}

async function wallet(user: string) {
  const a = await findAccount(pool(), 'wallet', user);
  const b = a ? await getBalance(pool(), a.id) : null;
  return { posted: b?.posted ?? 0n, pendingIn: b?.pendingIn ?? 0n };
}

describe('expiry inquiry of overdue reservations', () => {
  it('a lost expiry notice: the inquiry expires the deposit and releases its hold, once', async () => {
    const d = await reserve('u-exp-1', 40_000n);
    expect(await wallet('u-exp-1')).toEqual({ posted: 0n, pendingIn: 40_000n });
    await lost(() => sim.expire(d.providerPaymentId!));
    // Before the deadline nothing is asked.
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 0, stored: 0 });
    await pastDeadline(d.id);
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 1, stored: 1 });
    await t.engine.inbox.runOnce(100);
    expect((await t.engine.deposits.getDeposit(d.id))!.status).toBe('expired');
    expect(await wallet('u-exp-1')).toEqual({ posted: 0n, pendingIn: 0n });
    const inbox = await pool().query(`SELECT source, status FROM inbox WHERE event_id = $1`, [`seigo-inquiry-${d.providerPaymentId}-expired`]);
    expect(inbox.rows).toEqual([{ source: 'reconciliation', status: 'processed' }]);
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 0, stored: 0 });
  });

  it('a lost paid notice: the inquiry credits the deposit; the webhook arriving late credits nothing more', async () => {
    const d = await reserve('u-exp-2', 25_000n, 'payeasy');
    await lost(() => sim.pay(d.providerPaymentId!));
    await pastDeadline(d.id);
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 1, stored: 1 });
    await t.engine.inbox.runOnce(100);
    expect(await t.engine.deposits.getDeposit(d.id)).toMatchObject({ status: 'succeeded', credited: 25_000n });
    expect(await wallet('u-exp-2')).toEqual({ posted: 25_000n, pendingIn: 0n });

    const captured = sim.events.filter((e) => e.type === 'payment.captured' && (e.data as { id: string }).id === d.providerPaymentId);
    expect(captured).toHaveLength(1);
    const body = JSON.stringify(captured[0]);
    const res = await request(`${t.url}/webhooks/komoju`, {
      method: 'POST', body, headers: { 'content-type': 'application/json', 'x-komoju-signature': sign(WEBHOOK_SECRET, body) },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    await t.engine.inbox.runOnce(100);
    expect(await wallet('u-exp-2')).toEqual({ posted: 25_000n, pendingIn: 0n });
    const credits = await pool().query(`SELECT count(*)::int AS n FROM ledger_transactions WHERE metadata->>'deposit_id' = $1`, [d.id]);
    expect(credits.rows[0].n).toBe(1);
  });

  it('a reservation KOMOJU still has awaiting payment is left as it is, and asked about again only after a while', async () => {
    const d = await reserve('u-exp-3', 10_000n);
    await pastDeadline(d.id);
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 1, stored: 0 });
    expect((await t.engine.deposits.getDeposit(d.id))!.status).toBe('awaiting_payment');
    expect(await wallet('u-exp-3')).toEqual({ posted: 0n, pendingIn: 10_000n });
    // Asked again only after a while (others overdue have their turn first); then KOMOJU has expired it.
    expect(await t.engine.expiryInquiry.runOnce()).toEqual({ asked: 0, stored: 0 });
    await lost(() => sim.expire(d.providerPaymentId!));
    // Another process (or this one an hour later) asks again.
    const other = createExpiryInquiry(t.engine, { provider: 'komoju', afterMs: 0 });
    expect(await other.runOnce()).toEqual({ asked: 1, stored: 1 });
    await t.engine.inbox.runOnce(100);
    expect((await t.engine.deposits.getDeposit(d.id))!.status).toBe('expired');
    expect(await wallet('u-exp-3')).toEqual({ posted: 0n, pendingIn: 0n });
  });
});
