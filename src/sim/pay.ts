// `seigo sim pay <deposit-id>`: the customer pays a deposit that awaits payment, as the outside world would:
// at the KOMOJU simulator's till (konbini, Pay-easy: 速報 then 確報) or at the bank (a transfer into the user's
// virtual account, announced by the simulated bank's signed notice). Then it waits for seigo to book it.
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { Config } from '../kernel/config.ts';
import { SeigoError } from '../kernel/errors.ts';
import { postStandardWebhook } from './webhook.ts';

/** A deposit as `GET /v1/deposits/:id` shows it (the fields this needs). */
export interface DepositView {
  id: string; method: string; status: string; amount: string; currency: string; provider: string;
  provider_payment_id: string | null; payment_instructions: Record<string, string> | null;
}

export interface SimPayOptions {
  /** seigo's base URL and an API client key for /v1. */
  base: string;
  apiKey: string;
  /** konbini / Pay-easy: send the 速報 (preliminary notice) before the 確報; default true. */
  preliminary?: boolean;
  /** How long to wait for a final status; 0: do not wait. */
  waitMs: number;
}

const PAYABLE = ['awaiting_payment', 'paid_preliminary', 'expired'];
const SETTLED = ['succeeded', 'failed', 'cancelled'];

export async function getDeposit(base: string, apiKey: string, id: string): Promise<DepositView> {
  const res = await request(`${base}/v1/deposits/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${apiKey}` } });
  const body = await res.body.json().catch(() => null) as (DepositView & { detail?: string }) | null;
  if (res.statusCode === 404) throw new SeigoError('deposit_not_found', `no deposit ${id} at ${base}`, 404);
  if (res.statusCode !== 200 || !body) throw new SeigoError('engine_error', `GET /v1/deposits/${id} answered ${res.statusCode}: ${body?.detail ?? ''}`, 502);
  return body;
}

/** Pays the deposit at its provider's simulator or the simulated bank; returns the deposit once seigo booked it (or the wait ended). */
export async function simPay(config: Pick<Config, 'providers' | 'deposits'>, id: string, o: SimPayOptions): Promise<{ paid_via: string; deposit: DepositView }> {
  const before = await getDeposit(o.base, o.apiKey, id);
  if (before.method === 'card') {
    throw new SeigoError('nothing_to_pay', `deposit ${id} is a card deposit: the card is charged when it is created (status ${before.status})`, 409);
  }
  if (!PAYABLE.includes(before.status)) {
    throw new SeigoError('not_awaiting_payment', `deposit ${id} is ${before.status}, not awaiting payment`, 409);
  }
  const paidVia = before.method === 'bank_transfer' ? await payByTransfer(config, before, o.base) : await payAtTill(config, before, o.preliminary ?? true);
  return { paid_via: paidVia, deposit: await waitSettled(o, before) };
}

async function payAtTill(config: Pick<Config, 'providers'>, d: DepositView, preliminary: boolean): Promise<string> {
  const p = config.providers[d.provider];
  if (p?.kind !== 'komoju' || !p.apiBase) throw new SeigoError('no_simulator', `deposit ${d.id} was reserved at "${d.provider}", which is not a KOMOJU simulator here`, 409);
  if (!d.provider_payment_id) throw new SeigoError('not_reserved_yet', `deposit ${d.id} has no KOMOJU payment yet (status ${d.status}): try again in a moment`, 409);
  const action = d.status === 'expired' ? 'pay-after-expiry' : d.status === 'paid_preliminary' ? 'confirm' : 'pay';
  const res = await request(`${p.apiBase}/_sim/payments/${encodeURIComponent(d.provider_payment_id)}/${action}`, {
    method: 'POST', body: JSON.stringify({ preliminary }),
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${p.secretKey}:`).toString('base64')}` },
  });
  const body = await res.body.json().catch(() => null) as { error?: { message?: string } } | null;
  if (res.statusCode === 404 && !body?.error?.message?.startsWith('no payment')) {
    throw new SeigoError('no_simulator', `the provider "${d.provider}" at ${p.apiBase} is not the KOMOJU simulator`, 409);
  }
  if (res.statusCode !== 200) throw new SeigoError('simulator_refused', `the KOMOJU simulator refused: ${body?.error?.message ?? res.statusCode}`, 409);
  return `${d.provider} (${action})`;
}

/** The bank reports the transfer the instructions ask for: the amount, to the virtual account, under the registered kana name. */
async function payByTransfer(config: Pick<Config, 'providers' | 'deposits'>, d: DepositView, base: string): Promise<string> {
  const bank = config.deposits.bankTransferProvider;
  const i = d.payment_instructions;
  if (!bank) throw new SeigoError('no_bank', 'no bank-transfer provider: set deposits.bankTransferProvider (npm start sets up a simulated "bank")', 409);
  if (!i) throw new SeigoError('not_awaiting_payment', `deposit ${d.id} has no payment instructions`, 409);
  const transactionDate = new Date(Date.now() + 9 * 3_600_000).toISOString().slice(0, 10); // 勘定日, in JST
  const data = {
    id: String(randomInt(1, 1_000_000)).padStart(6, '0'), // 照会番号
    account_number: i.account_number, bank_code: i.bank_code, branch_code: i.branch_code,
    deposit_type: ACCOUNT_TYPE_CODES[i.account_type ?? 'ordinary'] ?? '1',
    amount: Number(d.amount), currency: d.currency, payer_name: i.payer_name_kana, transaction_date: transactionDate,
  };
  const r = await postStandardWebhook(config, { provider: bank, type: 'bank_transfer.received', data, base });
  if (r.status !== 200) throw new SeigoError('engine_error', `POST /webhooks/${bank} answered ${r.status}: ${JSON.stringify(r.response)}`, 502);
  return `${bank} (bank_transfer.received ${data.id})`;
}

/** 預金種目 of our account types. */
const ACCOUNT_TYPE_CODES: Record<string, string> = { ordinary: '1', checking: '2', savings: '4' };

async function waitSettled(o: SimPayOptions, d: DepositView): Promise<DepositView> {
  const until = Date.now() + o.waitMs;
  let last = d;
  while (Date.now() < until) {
    await sleep(200);
    last = await getDeposit(o.base, o.apiKey, d.id);
    if (SETTLED.includes(last.status)) return last;
  }
  return last;
}
