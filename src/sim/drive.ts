// Drives deposits of every method through seigo's public API and plays the customers: it pays
// konbini / Pay-easy reservations at the KOMOJU simulator (preliminary notices, cancelled ones,
// payment after expiry), sends bank transfers that the bank reports in Zengin files (half of them
// announced first through POST /v1/deposits and sent to the account its instructions name, some
// late or never), and makes some users sit near their limit and some restricted. Everything it
// will do is drawn from the seed before it starts (`planDeposits`), so a seed repeats what is
// driven; only timing varies.
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '../kernel/prng.ts';
import { ensureAccount, findAccount, getBalance, post, restrictOwner, setBalanceLimit } from '../ledger/index.ts';
import type { BankTransferSent } from './bank.ts';
import type { World } from './world.ts';

type Method = 'card' | 'konbini' | 'payeasy' | 'bank_transfer';
/** What the customer does with a reservation once it exists. */
type Scenario = 'pay' | 'pay_with_preliminary' | 'preliminary_cancelled_then_pay' | 'preliminary_cancelled_then_expire' | 'expire' | 'pay_after_expiry';
type TransferKind = 'match' | 'name_mismatch' | 'unknown_account';

export interface SimUser {
  id: string;
  /** Registered name (full-width kana) and the same name as the bank writes it (half-width). */
  nameKana: string;
  payerKana: string;
  limit: number | undefined;
  restricted: 'no' | 'from_start' | 'later';
  /** Registers a bank account for refunds of escrowed money (the others' escrow waits, reported). */
  refundAccount: boolean;
  accountNumber?: string | undefined;
}

export interface PlannedDeposit {
  index: number;
  user: SimUser;
  method: Method;
  amount: number;
  card: string;
  store: string;
  scenario: Scenario;
  transfer: TransferKind;
  /** A bank transfer announced first (POST /v1/deposits, bank_transfer) rather than just sent, as many customers do. */
  withIntent: boolean;
  customerDelayMs: number;
}

export interface Plan {
  users: SimUser[];
  deposits: PlannedDeposit[];
}

const NAMES: readonly [string, string][] = [
  ['ヤマダ タロウ', 'ﾔﾏﾀﾞ ﾀﾛｳ'], ['スズキ ハナコ', 'ｽｽﾞｷ ﾊﾅｺ'], ['タナカ イチロウ', 'ﾀﾅｶ ｲﾁﾛｳ'], ['サトウ ケンジ', 'ｻﾄｳ ｹﾝｼﾞ'],
  ['ワタナベ ユキ', 'ﾜﾀﾅﾍﾞ ﾕｷ'], ['イトウ ショウ', 'ｲﾄｳ ｼｮｳ'], ['カ)セイゴショウジ', 'ｶ)ｾｲｺﾞｼｮｳｼﾞ'], ['コバヤシ メグミ', 'ｺﾊﾞﾔｼ ﾒｸﾞﾐ'],
];
const STORES = ['lawson', 'family-mart', 'seven-eleven', 'ministop'] as const;

export function planDeposits(o: { seed: number; count: number; users: number; faultRate: number }): Plan {
  const r = mulberry32(o.seed ^ 0xd1ce);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const users: SimUser[] = Array.from({ length: o.users }, (_, i) => {
    const [nameKana, payerKana] = NAMES[i % NAMES.length]!;
    const kind = r();
    return {
      id: `sim-${o.seed}-u${i + 1}`, nameKana, payerKana,
      // About a quarter sit near a low limit, so refusals, escrow and the limit check all happen.
      limit: kind < 0.25 ? 40_000 + Math.floor(r() * 4) * 5_000 : undefined,
      restricted: kind >= 0.25 && kind < 0.33 ? 'from_start' : kind >= 0.33 && kind < 0.41 ? 'later' : 'no',
      refundAccount: r() < 0.6,
    };
  });
  const f = o.faultRate;
  const deposits: PlannedDeposit[] = Array.from({ length: o.count }, (_, index) => {
    const m = r();
    const method: Method = m < 0.3 ? 'card' : m < 0.55 ? 'konbini' : m < 0.75 ? 'payeasy' : 'bank_transfer';
    const s = r();
    // The customer's own faults (a cancelled 速報, paying after the deadline) grow with the fault rate.
    const scenario: Scenario = s < f / 2 ? 'preliminary_cancelled_then_pay' : s < f ? 'pay_after_expiry'
      : s < f + 0.05 ? 'preliminary_cancelled_then_expire' : s < f + 0.15 ? 'expire' : s < f + 0.35 ? 'pay_with_preliminary' : 'pay';
    const t = r();
    return {
      index, user: pick(users), method, amount: 1_000 + Math.floor(r() * 300) * 100,
      card: r() < 0.9 ? 'pm_card_visa' : 'pm_card_chargeDeclined', store: pick(STORES), scenario,
      transfer: t < 0.85 ? 'match' : t < 0.93 ? 'name_mismatch' : 'unknown_account', withIntent: r() < 0.5,
      customerDelayMs: Math.floor(r() * 1_500),
    };
  });
  return { users, deposits };
}

export interface DriveStats {
  requested: number;
  /** Wall time of the drive, from the first request until every customer and the bank are done. */
  driveMs: number;
  /** …until the last request was answered (or the time was up): the time the workload is judged over. */
  laneMs: number;
  byMethod: Record<Method, number>;
  accepted: number;
  refused: Record<string, number>;
  /** Calls that never got a final answer from the API despite retries (a client-side give-up). */
  gaveUp: number;
  bankFiles: number;
  bankFilesSentTwice: number;
  /** Copies of bank files beyond the first (a storm sends each 1–6 times). */
  bankFileCopies: number;
  /** Transfers the bank withdrew (取消): right after crediting, after the user spent the money, or never reported at all. */
  cancellations: { credited: number; spent: number; unknown: number };
  scenarios: Record<string, number>;
}

export interface DriveOptions {
  concurrency: number;
  faultRate: number;
  untilMs?: number | undefined;
  /** Share of reported transfers the bank later withdraws (half of them after the user spent the money). */
  cancelRate?: number | undefined;
  /** Every bank file sent 1…stormCopies times at once, files overlapping and out of order (0: one at a time). */
  stormCopies?: number | undefined;
  /** An injected fault for testing the workload check: each lane waits this long before each deposit. */
  throttleMs?: number | undefined;
}

interface ApiAnswer { status: number; body: Record<string, unknown> }

/** One API call as a careful client makes it: retried with the same Idempotency-Key until it gets a real answer. */
async function call(w: World, method: 'GET' | 'POST', path: string, o: { body?: unknown; raw?: Buffer; key?: string; admin?: boolean; giveUpMs?: number } = {}): Promise<ApiAnswer | undefined> {
  const end = Date.now() + (o.giveUpMs ?? 120_000);
  let wait = 100;
  for (;;) {
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${o.admin ? w.adminToken : w.apiKey}` };
      if (o.body !== undefined) headers['content-type'] = 'application/json';
      if (o.raw !== undefined) headers['content-type'] = 'application/octet-stream';
      if (o.key) headers['idempotency-key'] = o.key;
      const res = await fetch(`${w.url}${path}`, {
        method, headers, signal: AbortSignal.timeout(20_000),
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : o.raw !== undefined ? { body: new Uint8Array(o.raw) } : {}),
      });
      const text = await res.text();
      // 409: the same key is still running (or its process died and the key is not free yet); 5xx: try again.
      if (res.status !== 409 && res.status < 500) {
        let body: Record<string, unknown> = {};
        try { body = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
        return { status: res.status, body };
      }
    } catch {
      // the connection broke (a killed process): the request may or may not have run; the key makes a retry safe
    }
    if (Date.now() > end) return undefined;
    await sleep(wait);
    wait = Math.min(wait * 2, 2_000);
  }
}

/**
 * Creates the users: virtual accounts through the API, limits and restrictions as an operator would
 * set them; 16 at a time (one at a time, the 2,000 users of a 10,000-deposit run took minutes).
 */
export async function setUpUsers(w: World, plan: Plan): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < plan.users.length) await setUpUser(w, plan, plan.users[next++]!);
  }));
}

async function setUpUser(w: World, plan: Plan, u: SimUser): Promise<void> {
  const a = await call(w, 'POST', '/v1/virtual-accounts', { body: { user_id: u.id, name_kana: u.nameKana } });
  if (a?.status !== 200 && a?.status !== 201) throw new Error(`could not assign a virtual account to ${u.id}: ${a ? `${a.status} ${JSON.stringify(a.body)}` : 'no answer'}`);
  u.accountNumber = String(a.body.account_number);
  if (u.limit !== undefined) await setBalanceLimit(w.pool, u.id, BigInt(u.limit));
  if (u.restricted === 'from_start') await restrictOwner(w.pool, u.id, 'frozen by the simulation');
  if (u.refundAccount) {
    const ra = await call(w, 'POST', '/v1/refund-accounts', {
      body: { user_id: u.id, bank_code: '0005', branch_code: '123', account_type: 'ordinary', account_number: String(1_000_000 + plan.users.indexOf(u)), holder_kana: bankHolderName(u.payerKana) },
    });
    if (ra?.status !== 200 && ra?.status !== 201) throw new Error(`could not register a refund account for ${u.id}: ${ra ? `${ra.status} ${JSON.stringify(ra.body)}` : 'no answer'}`);
  }
}

/**
 * Drives the planned deposits, `concurrency` at a time, until all are done or `untilMs` (epoch ms)
 * passes; customers' later actions (paying, letting expire) run in the background and are awaited
 * before this returns, and the bank's last file is delivered.
 */
export async function driveDeposits(w: World, plan: Plan, o: DriveOptions): Promise<DriveStats> {
  const stats: DriveStats = {
    requested: 0, driveMs: 0, laneMs: 0, byMethod: { card: 0, konbini: 0, payeasy: 0, bank_transfer: 0 }, accepted: 0, refused: {}, gaveUp: 0,
    bankFiles: 0, bankFilesSentTwice: 0, bankFileCopies: 0, cancellations: { credited: 0, spent: 0, unknown: 0 }, scenarios: {},
  };
  const startedAt = Date.now();
  const customers: Promise<void>[] = [];
  let next = 0;
  let driving = true;
  let bankError: Error | undefined;
  const bankLoop = runBank(w, plan, o, stats, () => driving).catch((e: unknown) => { bankError = e as Error; });

  const count = (what: string) => { stats.scenarios[what] = (stats.scenarios[what] ?? 0) + 1; };
  const one = async (d: PlannedDeposit) => {
    stats.requested++;
    stats.byMethod[d.method]++;
    const u = d.user;
    if (d.method === 'bank_transfer' && !d.withIntent) {
      stats.accepted++;
      count(`transfer_${d.transfer}`);
      sendTransfer(w, plan, d, u.accountNumber!);
      return;
    }
    const body: Record<string, unknown> = { method: d.method, user_id: u.id, amount: d.amount };
    if (d.method === 'card') body.payment_method = d.card;
    else if (d.method !== 'bank_transfer') body.email = `${u.id}@example.com`;
    if (d.method === 'konbini') body.store = d.store;
    const key = `sim-${w.seed}-${d.index}`;
    const a = await call(w, 'POST', '/v1/deposits', { body, key, giveUpMs: 180_000 });
    if (!a) {
      stats.gaveUp++;
      w.walletGaveUp.add(key);
      return;
    }
    if (a.status !== 201) {
      const code = typeof a.body.code === 'string' ? a.body.code : `http_${a.status}`;
      stats.refused[code] = (stats.refused[code] ?? 0) + 1;
      return;
    }
    stats.accepted++;
    const depositId = String(a.body.id);
    w.walletDeposits.add(depositId);
    if (d.method === 'card') return;
    if (d.method === 'bank_transfer') {
      const when = transferTiming(d.scenario);
      count(`bank_transfer_${when}`);
      if (when !== 'never') count(`transfer_${d.transfer}`);
      customers.push(payBankTransfer(w, plan, d, a.body, when));
      return;
    }
    count(d.scenario);
    customers.push(playCustomer(w, d, depositId));
  };

  const lanes = Array.from({ length: o.concurrency }, async () => {
    while (next < plan.deposits.length && (o.untilMs === undefined || Date.now() < o.untilMs)) {
      if (o.throttleMs) await sleep(o.throttleMs);
      // Another lane may have taken the last deposit, or the time run out, while this one waited.
      if (next >= plan.deposits.length || (o.untilMs !== undefined && Date.now() >= o.untilMs)) break;
      await one(plan.deposits[next++]!);
    }
  });
  try {
    await Promise.all(lanes);
    stats.laneMs = Date.now() - startedAt;
    await Promise.all(customers);
  } finally {
    driving = false;
    await bankLoop;
  }
  if (bankError) throw bankError;
  stats.driveMs = Date.now() - startedAt;
  return stats;
}

/**
 * The bank: every 700 ms it hands over the file of what arrived, to the import API, until the
 * driving ends and nothing waits. Once a file is taken in, it may withdraw some of the transfers in
 * it (取消, in a later file): `cancelRate` of them, half after the user spent the money, and now and
 * then one it never reported. In a storm each file goes 1…stormCopies times, all at once, and the
 * next file does not wait for them (files overlap and arrive out of order); a withdrawal is still
 * only decided after its transfer's file was taken in, as a bank would.
 */
async function runBank(w: World, plan: Plan, o: DriveOptions, stats: DriveStats, driving: () => boolean): Promise<void> {
  const r = mulberry32(w.seed ^ 0xba4c);
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  const send = async (file: Buffer, copies: number, spreadMs: number) => {
    await Promise.all(Array.from({ length: copies }, async (_, i) => {
      if (spreadMs > 0 && i > 0) await sleep(Math.floor(r() * spreadMs));
      // A bank retries a file for a long time; copies of overlapping files at once make imports wait on each other's locks.
      const a = await call(w, 'POST', '/admin/v1/bank-transfers/import', { raw: file, admin: true, giveUpMs: 600_000 });
      if (a?.status !== 200) throw new Error(`the bank's transfer-notice file was refused: ${a ? `${a.status} ${JSON.stringify(a.body)}` : 'no answer in 10 minutes'}`);
    }));
  };
  while (driving() || w.bank.waitingCount > 0 || inFlight.size > 0) {
    if (failure) throw failure;
    await sleep(driving() ? 700 : inFlight.size > 0 ? 100 : 0);
    const before = w.bank.reported.length;
    const file = w.bank.takeFile();
    if (!file) continue;
    const fresh = w.bank.reported.slice(before);
    stats.bankFiles++;
    const storm = (o.stormCopies ?? 0) >= 1;
    const copies = storm ? 1 + Math.floor(r() * o.stormCopies!) : r() < o.faultRate ? 2 : 1;
    if (copies > 1) stats.bankFilesSentTwice++;
    stats.bankFileCopies += copies - 1;
    const delivery = send(file, copies, storm ? 1_500 : 0).then(() => withdrawSome(w, plan, fresh, o.cancelRate ?? 0, r, stats));
    if (!storm) {
      await delivery;
      continue;
    }
    const p: Promise<void> = delivery.catch((e: unknown) => { failure = e as Error; }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  if (failure) throw failure;
}

/** After a file was taken in: the bank withdraws some of its transfers (see runBank), each in a later file. */
async function withdrawSome(w: World, plan: Plan, fresh: readonly BankTransferSent[], rate: number, r: () => number, stats: DriveStats): Promise<void> {
  const c = stats.cancellations;
  for (const t of fresh) {
    const user = plan.users.find((u) => u.accountNumber !== undefined && Number(u.accountNumber) === Number(t.accountNumber));
    // Every run with withdrawals has each kind at least once (the first transfers to a user's account
    // get them in turn), so that even a short run exercises all three; after that, the seed decides.
    const first = rate > 0 && user ? (c.unknown === 0 ? rate / 6 : c.spent === 0 ? rate / 2 : c.credited === 0 ? rate * 0.9 : undefined) : undefined;
    const roll = first ?? r();
    if (roll >= rate) continue;
    if (roll < rate / 3 && user) {
      // The bank's own error: a transfer it never reported, to this account, of an amount no customer sends (not a multiple of 100).
      w.bank.cancelUnknown({ accountNumber: t.accountNumber, amount: t.amount + 37n, payerName: 'ﾐｽﾞﾎ ｷﾞﾝｺｳ' });
      stats.cancellations.unknown++;
      continue;
    }
    if (roll < (rate * 2) / 3 && user && (await spend(w, user.id, t.amount, t.externalId))) stats.cancellations.spent++;
    else stats.cancellations.credited++;
    w.bank.cancel(t.externalId);
  }
}

/** The wallet backend spends up to `amount` of the user's available balance (a purchase at the shop): true if it spent anything. */
async function spend(w: World, userId: string, amount: bigint, ref: string): Promise<boolean> {
  const wallet = await findAccount(w.pool, 'wallet', userId);
  if (!wallet) return false;
  const available = (await getBalance(w.pool, wallet.id))?.available ?? 0n;
  const spent = available < amount ? available : amount;
  if (spent <= 0n) return false;
  const shop = await ensureAccount(w.pool, { kind: 'revenue', owner: 'sim-shop' });
  const p = await post(w.pool, {
    idempotencyKey: `sim-spend:${ref}`, kind: 'purchase', description: `the user spends before the bank withdraws ${ref}`,
    entries: [{ accountId: wallet.id, amount: -spent }, { accountId: shop.id, amount: spent }],
  });
  // Refused (the money moved meanwhile, or the account was restricted): the withdrawal goes ahead all the same.
  return p.ok;
}

/** A name as a bank holds an account's 口座名義: half-width kana without small kana (ｼｮｳ → ｼﾖｳ). */
function bankHolderName(kana: string): string {
  const large: Record<string, string> = { ｧ: 'ｱ', ｨ: 'ｲ', ｩ: 'ｳ', ｪ: 'ｴ', ｫ: 'ｵ', ｬ: 'ﾔ', ｭ: 'ﾕ', ｮ: 'ﾖ', ｯ: 'ﾂ' };
  return [...kana].map((c) => large[c] ?? c).join('');
}

/** The customer transfers `d.amount` from their bank: to `accountNumber`, or a mistyped one; as themselves, or under another name. */
function sendTransfer(w: World, plan: Plan, d: PlannedDeposit, accountNumber: string): void {
  const u = d.user;
  const other = plan.users.find((x) => x.payerKana !== u.payerKana) ?? u;
  w.bank.transfer({
    accountNumber: d.transfer === 'unknown_account' ? String(9_000_000 + d.index) : accountNumber,
    amount: BigInt(d.amount), payerName: d.transfer === 'name_mismatch' ? other.payerKana : u.payerKana,
  });
}

type TransferTiming = 'in_time' | 'after_deadline' | 'never';

/** What the customer who announced a bank transfer does, from the scenario drawn for every deposit. */
function transferTiming(s: Scenario): TransferTiming {
  return s === 'expire' || s === 'preliminary_cancelled_then_expire' ? 'never' : s === 'pay_after_expiry' ? 'after_deadline' : 'in_time';
}

/** The customer who announced a bank transfer sends it to the account in the instructions: soon, after the deadline, or never. */
async function payBankTransfer(w: World, plan: Plan, d: PlannedDeposit, deposit: Record<string, unknown>, when: TransferTiming): Promise<void> {
  if (when === 'never') return;
  await sleep(d.customerDelayMs);
  if (d.user.restricted === 'later') await restrictOwner(w.pool, d.user.id, 'frozen by the simulation while a bank transfer was announced');
  if (when === 'after_deadline') await sleep(Math.max(0, Date.parse(String(deposit.payment_deadline)) - Date.now()) + 1_000);
  const instructions = deposit.payment_instructions as Record<string, string>;
  sendTransfer(w, plan, d, instructions.account_number!);
}

/** The customer, with the payment instructions KOMOJU sent by email, acts at the simulator. */
async function playCustomer(w: World, d: PlannedDeposit, depositId: string): Promise<void> {
  // The reservation may still be on its way (a timeout, a killed process): KOMOJU knows it once it exists.
  let paymentId: string | undefined;
  for (let i = 0; i < 200 && !paymentId; i++) {
    paymentId = w.komoju.paymentIdForOrder(depositId);
    if (!paymentId) await sleep(100);
  }
  if (!paymentId) return; // never reserved at KOMOJU: nothing to pay
  await sleep(d.customerDelayMs);
  if (d.user.restricted === 'later') await restrictOwner(w.pool, d.user.id, 'frozen by the simulation while a reservation was open');
  const k = w.komoju;
  const id = paymentId;
  switch (d.scenario) {
    case 'pay': k.pay(id); return;
    case 'pay_with_preliminary': k.pay(id, { preliminary: true }); return;
    case 'preliminary_cancelled_then_pay':
      k.pay(id, { preliminary: true, holdFinal: true });
      await sleep(200);
      k.cancelPreliminary(id);
      await sleep(300);
      k.pay(id);
      return;
    case 'preliminary_cancelled_then_expire':
      k.pay(id, { preliminary: true, holdFinal: true });
      await sleep(200);
      k.cancelPreliminary(id);
      await sleep(300);
      k.expire(id);
      return;
    case 'expire': k.expire(id); return;
    case 'pay_after_expiry':
      k.expire(id);
      await sleep(300);
      k.payAfterExpiry(id);
  }
}
