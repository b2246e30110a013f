// Konbini / Pay-easy deposits (pre-reservation flow, 事前予約型) through seigo's own paths,
// with the KOMOJU simulator over loopback: the reservation and its hold counting toward the limit,
// preliminary (速報) and final (確報) notices under both credit policies (exactly one credit),
// duplicated and reordered notices, a withdrawn preliminary notice, expiry, and a payment after
// expiry credited beyond the limit into escrow.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance } from '../ledger/index.ts';
import { sign } from '../providers/komoju/index.ts';
import type { KomojuEvent } from '../providers/komoju/payment.ts';
import { startKomojuEngine, type KomojuEngine } from '../../test/helpers/komoju.ts';
import type { Deposit } from './state.ts';
import type { CreditOn, ReservationDepositInput } from './reservation.ts';

const WEBHOOK_SECRET = 'komoju_whsec_seigo_reservations';
const API_KEY = 'wallet-backend-key-0123456789abcdef';

type Env = KomojuEngine;

function setup(creditOn: CreditOn): Promise<Env> {
  return startKomojuEngine({
    seed: 7,
    webhookSecret: WEBHOOK_SECRET,
    config: {
      apiClients: [{ name: 'wallet', key: API_KEY }],
      deposits: { cardProvider: 'stripe', defaultLimit: 1_000_000, creditOn, reservationProvider: 'komoju' },
    },
  });
}

function helpers(env: () => Env) {
  const pool = () => env().t.tdb.db.pool;
  const deposits = () => env().t.engine.deposits;
  const h = {
    async reserve(userId: string, amount: bigint, method: 'konbini' | 'payeasy' = 'konbini'): Promise<Deposit> {
      const input: ReservationDepositInput = { userId, method, amount, email: 'taro@example.jp', ...(method === 'konbini' ? { store: 'lawson' } : {}) };
      const r = await deposits().createReservationDeposit(input);
      if (!r.ok) throw new Error(`refused: ${r.error.code}`);
      return r.value;
    },
    /** Delivers what the simulator sent and processes it. */
    async flush(): Promise<void> {
      await env().sim.idle();
      await env().t.engine.inbox.runOnce(100);
    },
    get: async (id: string) => (await deposits().getDeposit(id))!,
    async balance(user: string, kind: 'wallet' | 'escrow' = 'wallet') {
      const a = await findAccount(pool(), kind, user);
      const b = a ? await getBalance(pool(), a.id) : null;
      return { posted: b?.posted ?? 0n, pendingIn: b?.pendingIn ?? 0n };
    },
    async credits(depositId: string): Promise<number> {
      const r = await pool().query<{ n: string }>(
        `SELECT count(*) AS n FROM ledger_transactions WHERE metadata->>'deposit_id' = $1`, [depositId]);
      return Number(r.rows[0]!.n);
    },
    async messages(depositId: string, topic: string): Promise<number> {
      const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM outbox_messages WHERE entity_type = 'deposit' AND entity_id = $1 AND topic = $2`, [depositId, topic]);
      return Number(r.rows[0]!.n);
    },
    /** Posts KOMOJU events to the webhook endpoint ourselves, in the given order, processing each. */
    async deliver(events: readonly KomojuEvent[]): Promise<void> {
      for (const e of events) {
        const body = JSON.stringify(e);
        const res = await request(`${env().t.url}/webhooks/komoju`, {
          method: 'POST', body, headers: { 'content-type': 'application/json', 'x-komoju-signature': sign(WEBHOOK_SECRET, body) },
        });
        await res.body.dump();
        expect(res.statusCode).toBeLessThan(300);
        await env().t.engine.inbox.runOnce(100);
      }
    },
    /** Runs `fn` with webhooks not delivered; returns the events the simulator sent meanwhile. */
    async captureEvents(fn: () => void | Promise<void>): Promise<KomojuEvent[]> {
      const sim = env().sim;
      const before = sim.events.length;
      const url = sim.webhookUrl;
      sim.webhookUrl = undefined;
      try {
        await fn();
        await sim.idle();
      } finally {
        sim.webhookUrl = url;
      }
      return sim.events.slice(before);
    },
  };
  return h;
}

async function closeEnv(env: Env | undefined) {
  await env?.close();
}

describe('reservation deposits, credit on the preliminary notice (default)', () => {
  let env: Env;
  beforeAll(async () => { env = await setup('preliminary'); });
  afterAll(async () => { await closeEnv(env); });
  const h = helpers(() => env);

  it('POST /v1/deposits reserves: awaiting_payment with the payment number and deadline; the hold counts toward the limit', async () => {
    const res = await request(`${env.t.url}/v1/deposits`, {
      method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'konbini', user_id: 'u-api', amount: '200000', email: 'taro@example.jp', store: 'family-mart' }),
    });
    const body = await res.body.json() as Record<string, unknown>;
    expect(res.statusCode).toBe(201);
    expect(body).toMatchObject({ method: 'konbini', status: 'awaiting_payment', amount: '200000', credited: '0', provider: 'komoju' });
    expect((body.payment_instructions as Record<string, string>).receipt).toMatch(/^\d{11}$/);
    expect(typeof body.payment_deadline).toBe('string');
    expect(await h.balance('u-api')).toEqual({ posted: 0n, pendingIn: 200_000n });

    // Pay-easy for 800,000 fills the wallet with holds alone; a card deposit of 1 yen is refused.
    const pe = await h.reserve('u-api', 800_000n, 'payeasy');
    expect(pe.status).toBe('awaiting_payment');
    expect(pe.paymentInstructions).toMatchObject({ bank_id: '58091' });
    const card = await env.t.engine.deposits.createCardDeposit({ userId: 'u-api', amount: 1n, paymentMethod: 'pm_card_visa' });
    expect(card.ok).toBe(false);
    if (!card.ok) expect(card.error).toEqual({ code: 'balance_limit_exceeded', headroom: 0n });
    const over = await request(`${env.t.url}/v1/deposits`, {
      method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'payeasy', user_id: 'u-api', amount: 1, email: 'taro@example.jp' }),
    });
    expect(over.statusCode).toBe(422);
    expect(((await over.body.json()) as { code?: string }).code ?? '').toContain('balance_limit_exceeded');
  });

  it('a refused reservation fails the deposit and releases its hold', async () => {
    // The simulator refuses konbini payments over ¥300,000.
    const d = await h.reserve('u-refused', 300_001n);
    expect(d).toMatchObject({ status: 'failed', failureCode: 'invalid_parameter', holdId: null });
    expect(await h.balance('u-refused')).toEqual({ posted: 0n, pendingIn: 0n });
    expect(await h.messages(d.id, 'deposit.failed')).toBe(1);
  });

  it('timeout after the reservation was made: unknown, the reservation webhook makes the inquiry due, the janitor resolves it', async () => {
    env.sim.setFaults({ timeoutAfterSuccess: 1 });
    let d: Deposit;
    try {
      d = await h.reserve('u-unknown', 6_000n);
    } finally {
      env.sim.setFaults({});
    }
    expect(d.status).toBe('unknown');
    expect(await h.balance('u-unknown')).toEqual({ posted: 0n, pendingIn: 6_000n });
    await h.flush();
    await env.t.engine.operations.janitorOnce();
    const now = await h.get(d.id);
    expect(now).toMatchObject({ status: 'awaiting_payment' });
    expect(now.providerPaymentId).not.toBeNull();
    expect(now.paymentInstructions?.receipt).toMatch(/^\d{11}$/);
    env.sim.pay(now.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 6_000n });
    expect(await h.credits(d.id)).toBe(1);
  });

  it('preliminary then final: credited once at the preliminary notice, hold released', async () => {
    const d = await h.reserve('u-pf', 10_000n);
    env.sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'paid_preliminary', credited: 10_000n, creditedAtNotice: 'preliminary', holdId: null });
    expect(await h.balance('u-pf')).toEqual({ posted: 10_000n, pendingIn: 0n });
    env.sim.confirm(d.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 10_000n });
    expect(await h.balance('u-pf')).toEqual({ posted: 10_000n, pendingIn: 0n });
    expect(await h.credits(d.id)).toBe(1);
    expect(await h.messages(d.id, 'deposit.succeeded')).toBe(1);
  });

  it('duplicated and reordered notices (final before preliminary, each twice): one credit', async () => {
    const d = await h.reserve('u-dup', 7_000n);
    const events = await h.captureEvents(() => env.sim.pay(d.providerPaymentId!, { preliminary: true }));
    const prelim = events.filter((e) => e.type === 'payment.preliminary_paid');
    const final = events.filter((e) => e.type === 'payment.captured');
    expect(prelim).toHaveLength(1);
    expect(final).toHaveLength(1);
    await h.deliver([final[0]!, prelim[0]!, final[0]!, prelim[0]!]);
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 7_000n, creditedAtNotice: 'final' });
    expect(await h.balance('u-dup')).toEqual({ posted: 7_000n, pendingIn: 0n });
    expect(await h.credits(d.id)).toBe(1);
  });

  it('simulator faults (duplicates, reordering) over several payments: one credit each', async () => {
    env.sim.setFaults({ duplicateWebhook: 0.7, reorderWebhooks: 0.5, seed: 3 });
    try {
      const ds = [];
      for (let i = 0; i < 4; i++) ds.push(await h.reserve('u-faults', 1_000n * BigInt(i + 1)));
      for (const d of ds) env.sim.pay(d.providerPaymentId!, { preliminary: true });
      await h.flush();
      await h.flush();
      for (const d of ds) {
        expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: d.amount });
        expect(await h.credits(d.id)).toBe(1);
      }
      expect(await h.balance('u-faults')).toEqual({ posted: 10_000n, pendingIn: 0n });
    } finally {
      env.sim.setFaults({});
    }
  });

  it('preliminary cancelled: the credit is reversed, the reservation awaits payment again, a later payment credits once', async () => {
    const d = await h.reserve('u-cancel', 5_000n);
    env.sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await h.flush();
    expect(await h.balance('u-cancel')).toEqual({ posted: 5_000n, pendingIn: 0n });
    env.sim.cancelPreliminary(d.providerPaymentId!);
    await h.flush();
    const after = await h.get(d.id);
    expect(after).toMatchObject({ status: 'awaiting_payment', credited: 0n, ledgerTransactionId: null, shortfall: 0n });
    expect(after.holdId).not.toBeNull();
    expect(await h.balance('u-cancel')).toEqual({ posted: 0n, pendingIn: 5_000n });
    expect(await h.messages(d.id, 'deposit.preliminary_cancelled')).toBe(1);
    // The customer pays again.
    env.sim.pay(d.providerPaymentId!, { preliminary: true });
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 5_000n });
    expect(await h.balance('u-cancel')).toEqual({ posted: 5_000n, pendingIn: 0n });
  });

  it('preliminary cancelled after the wallet spent it: the balance goes negative and the shortfall is recorded', async () => {
    const d = await h.reserve('u-spent', 5_000n);
    env.sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await h.flush();
    // The user spends 3,000 of it.
    const { post, ensureAccount } = await import('../ledger/index.ts');
    const wallet = (await findAccount(env.t.tdb.db.pool, 'wallet', 'u-spent'))!;
    const shop = await ensureAccount(env.t.tdb.db.pool, { kind: 'clearing', owner: 'shop', currency: 'JPY' });
    const spent = await post(env.t.tdb.db.pool, { idempotencyKey: 'spend-u-spent', entries: [{ accountId: wallet.id, amount: -3_000n }, { accountId: shop.id, amount: 3_000n }] });
    expect(spent.ok).toBe(true);
    env.sim.cancelPreliminary(d.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'awaiting_payment', credited: 0n, shortfall: 3_000n });
    expect((await h.balance('u-spent')).posted).toBe(-3_000n);
  });

  it('a preliminary cancellation overtaking its preliminary notice: nothing is credited', async () => {
    const d = await h.reserve('u-early', 4_000n);
    const events = await h.captureEvents(() => env.sim.cancelPreliminary(d.providerPaymentId!));
    expect(events.map((e) => e.type)).toEqual(['payment.preliminary_paid', 'payment.preliminary_paid.cancelled']);
    await h.deliver([events[1]!, events[0]!]);
    expect(await h.get(d.id)).toMatchObject({ status: 'awaiting_payment', credited: 0n });
    expect(await h.balance('u-early')).toEqual({ posted: 0n, pendingIn: 4_000n });
    expect(await h.credits(d.id)).toBe(0);
  });

  it('expiry releases the hold; paid after expiry is credited unrefusably, over the limit to escrow, never a breach', async () => {
    const d = await h.reserve('u-exp', 300_000n);
    expect(await h.balance('u-exp')).toEqual({ posted: 0n, pendingIn: 300_000n });
    env.sim.expire(d.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'expired', holdId: null });
    expect(await h.balance('u-exp')).toEqual({ posted: 0n, pendingIn: 0n });
    expect(await h.messages(d.id, 'deposit.expired')).toBe(1);

    // The freed room is used by another reservation, paid: the wallet now holds 800,000.
    const big = await h.reserve('u-exp', 800_000n, 'payeasy');
    env.sim.pay(big.providerPaymentId!);
    await h.flush();
    expect(await h.balance('u-exp')).toEqual({ posted: 800_000n, pendingIn: 0n });

    // The expired slip is paid after all: 200,000 to the wallet, 100,000 to escrow.
    env.sim.payAfterExpiry(d.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 200_000n, escrowed: 100_000n, paidAfterDeadline: true });
    expect((await h.balance('u-exp')).posted).toBe(1_000_000n);
    expect((await h.balance('u-exp', 'escrow')).posted).toBe(100_000n);
    expect(await h.messages(d.id, 'deposit.escrowed')).toBe(1);
    await h.flush();
    expect(await h.credits(d.id)).toBe(1);
  });
});

describe('reservation deposits, credit on the final notice', () => {
  let env: Env;
  beforeAll(async () => { env = await setup('final'); });
  afterAll(async () => { await closeEnv(env); });
  const h = helpers(() => env);

  it('preliminary is only recorded (the hold keeps counting); the final notice credits once', async () => {
    const d = await h.reserve('u-final', 10_000n);
    env.sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'paid_preliminary', credited: 0n });
    expect(await h.balance('u-final')).toEqual({ posted: 0n, pendingIn: 10_000n });
    env.sim.confirm(d.providerPaymentId!);
    await h.flush();
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 10_000n, creditedAtNotice: 'final' });
    expect(await h.balance('u-final')).toEqual({ posted: 10_000n, pendingIn: 0n });
    expect(await h.credits(d.id)).toBe(1);
  });

  it('duplicated and reordered notices: one credit', async () => {
    const d = await h.reserve('u-final-dup', 3_000n);
    const events = await h.captureEvents(() => env.sim.pay(d.providerPaymentId!, { preliminary: true }));
    const [prelim, final] = [events.find((e) => e.type === 'payment.preliminary_paid')!, events.find((e) => e.type === 'payment.captured')!];
    await h.deliver([final, final, prelim, prelim]);
    expect(await h.get(d.id)).toMatchObject({ status: 'succeeded', credited: 3_000n });
    expect(await h.credits(d.id)).toBe(1);
  });

  it('preliminary cancelled before any credit: back to awaiting_payment, nothing reversed', async () => {
    const d = await h.reserve('u-final-cancel', 2_000n);
    env.sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await h.flush();
    env.sim.cancelPreliminary(d.providerPaymentId!);
    await h.flush();
    expect(await h.get(d.id)).toMatchObject({ status: 'awaiting_payment', credited: 0n });
    expect(await h.balance('u-final-cancel')).toEqual({ posted: 0n, pendingIn: 2_000n });
    expect(await h.credits(d.id)).toBe(0);
  });
});
