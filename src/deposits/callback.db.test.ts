// User notices to the wallet's backend (D4): `deposits.callback` becomes an HTTP subscription of
// the outbox for every `deposit.*` topic. A callback that answers 500 until its notices are dead
// never touches the credit; a healthy one receives each notice — succeeded, failed, expired,
// escrowed, refund started and succeeded — signed with Standard Webhooks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance, setBalanceLimit } from '../ledger/index.ts';
import { DEPOSITS_CALLBACK_SUBSCRIPTION } from '../kernel/config.ts';
import type { KomojuSimulator } from '../providers/komoju/index.ts';
import { verifySignature } from '../providers/standard-webhooks/signature.ts';
import { eventually, TEST_SECRET, type TestEngine } from '../../test/helpers/engine.ts';
import { startKomojuEngine, type KomojuEngine } from '../../test/helpers/komoju.ts';
import { startReceiver, type ReceivedRequest, type Receiver } from '../../test/helpers/receiver.ts';
import type { Deposit } from './state.ts';

const WEBHOOK_SECRET = 'komoju_whsec_seigo_callback';

let k: KomojuEngine;
let t: TestEngine;
let sim: KomojuSimulator;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver(() => ({ status: 500 }));
  k = await startKomojuEngine({
    seed: 3,
    webhookSecret: WEBHOOK_SECRET,
    config: { deposits: { callback: { url: receiver.url, secret: TEST_SECRET, timeoutMs: 2_000, retrySchedule: [10, 10] } } },
    worker: true,
  });
  ({ t, sim } = k);
});
afterAll(async () => {
  await k?.close();
  await receiver?.close();
});

const pool = () => t.tdb.db.pool;

async function reserve(user: string, amount: bigint): Promise<Deposit> {
  const r = await t.engine.deposits.createReservationDeposit({ userId: user, method: 'konbini', amount, email: 'jiro@example.jp', store: 'ministop' });
  if (!r.ok) throw new Error(r.error.code);
  return r.value;
}

const statusOf = async (id: string) => (await t.engine.deposits.getDeposit(id))!.status;
const posted = async (kind: 'wallet' | 'escrow', user: string) => {
  const a = await findAccount(pool(), kind, user);
  return a ? (await getBalance(pool(), a.id))!.posted : 0n;
};

function notice(r: ReceivedRequest): { type: string; data: Record<string, unknown> } {
  return JSON.parse(r.body.toString('utf8')) as { type: string; data: Record<string, unknown> };
}

describe('user notices to the wallet callback', () => {
  it('deposits.callback is a config subscription for deposit.* to the URL', async () => {
    const s = await pool().query(`SELECT topic, target_type, target->>'url' AS url, secret, source FROM subscriptions WHERE name = $1`, [DEPOSITS_CALLBACK_SUBSCRIPTION]);
    expect(s.rows).toEqual([{ topic: 'deposit.*', target_type: 'http', url: receiver.url, secret: TEST_SECRET, source: 'config' }]);
  });

  it('a callback failing until its notices are dead never touches the credit', async () => {
    const d = await reserve('u-cb-1', 5_000n);
    await eventually(async () => (await statusOf(d.id)) === 'awaiting_payment');
    sim.pay(d.providerPaymentId!);
    await eventually(async () => (await statusOf(d.id)) === 'succeeded');
    const dead = await eventually(async () => {
      const r = await pool().query<{ topic: string; status: string; attempts: number }>(
        `SELECT m.topic, d.status, d.attempts FROM deliveries d JOIN outbox_messages m ON m.id = d.message_id
         JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = $1 AND m.entity_id = $2 ORDER BY m.topic`, [DEPOSITS_CALLBACK_SUBSCRIPTION, d.id]);
      return r.rows.length === 2 && r.rows.every((x) => x.status === 'dead') ? r.rows : undefined;
    });
    expect(dead).toEqual([
      { topic: 'deposit.awaiting_payment', status: 'dead', attempts: 3 },
      { topic: 'deposit.succeeded', status: 'dead', attempts: 3 },
    ]);
    expect(receiver.requests.filter((r) => notice(r).data.id === d.id)).toHaveLength(6);
    expect(await t.engine.deposits.getDeposit(d.id)).toMatchObject({ status: 'succeeded', credited: 5_000n });
    expect(await posted('wallet', 'u-cb-1')).toBe(5_000n);
  });

  it('a healthy callback receives every notice, signed with Standard Webhooks', async () => {
    receiver.answer(() => ({ status: 204 }));
    const from = receiver.requests.length;
    // Paid over the limit: succeeded and escrowed; the refund starts and succeeds.
    const over = await reserve('u-cb-2', 30_000n);
    await eventually(async () => (await statusOf(over.id)) === 'awaiting_payment');
    await setBalanceLimit(pool(), 'u-cb-2', 20_000n);
    sim.pay(over.providerPaymentId!);
    await eventually(async () => (await statusOf(over.id)) === 'succeeded');
    const reg = await t.engine.refunds.registerAccount({
      userId: 'u-cb-2', bankCode: '0009', branchCode: '010', accountType: 'ordinary', accountNumber: '7777777', holderKana: 'ｻｲﾄｳ ｼﾞﾛｳ',
    });
    expect(reg.started).toHaveLength(1);
    sim.settlePayouts('completed');
    await t.engine.refunds.runOnce(100, { askAll: true });
    // Expired, and failed (KOMOJU refuses a konbini payment over ¥300,000).
    const late = await reserve('u-cb-3', 1_000n);
    await eventually(async () => (await statusOf(late.id)) === 'awaiting_payment');
    sim.expire(late.providerPaymentId!);
    const refused = await reserve('u-cb-3', 350_000n);
    expect(refused.status).toBe('failed');
    await eventually(async () => (await statusOf(late.id)) === 'expired');

    const want = ['deposit.awaiting_payment', 'deposit.succeeded', 'deposit.escrowed', 'deposit.refund_started', 'deposit.refund_succeeded', 'deposit.expired', 'deposit.failed'];
    const got = await eventually(async () => {
      const reqs = receiver.requests.slice(from);
      const types = new Set(reqs.map((r) => notice(r).type));
      return want.every((w) => types.has(w)) ? reqs : undefined;
    });
    for (const r of got) {
      const h = (k: string) => String(r.headers[k]);
      expect(verifySignature([TEST_SECRET], { id: h('webhook-id'), timestamp: h('webhook-timestamp'), signature: h('webhook-signature') }, r.body, new Date()).ok).toBe(true);
    }
    const byType = new Map(got.map((r) => [notice(r).type, notice(r).data]));
    expect(byType.get('deposit.escrowed')).toMatchObject({ id: over.id, user_id: 'u-cb-2', credited: '20000', escrowed: '10000' });
    expect(byType.get('deposit.refund_succeeded')).toMatchObject({ deposit_id: over.id, amount: '10000', payout_amount: '10000', status: 'succeeded' });
    expect(byType.get('deposit.expired')).toMatchObject({ id: late.id, status: 'expired' });
    expect(byType.get('deposit.failed')).toMatchObject({ id: refused.id, status: 'failed', failure_code: 'invalid_parameter' });
    // Each delivery once: the receiver acknowledged it, nothing is sent twice.
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(got.length);
  });
});
