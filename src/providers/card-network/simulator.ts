// A card network stand-in for development and tests: it makes the events of purchases (exact,
// partial, over and split clearings, force posts, reversals, expiries, refunds) in any currency at
// its own rates, signs them as the network does (Standard Webhooks), and delivers them with seeded
// faults: duplicates, reordering (a clearing before its authorization), drops, unknown event types.
// What it dropped is still in its daily clearing file, for reconciliation to find.
import { request } from 'undici';
import { mulberry32 } from '../../kernel/prng.ts';
import { signedHeaders } from '../standard-webhooks/index.ts';
import type { CardNetworkEventType } from './events.ts';

export interface NetworkEvent { id: string; type: CardNetworkEventType | string; timestamp: string; data: Record<string, unknown> }

export type CardScenario = 'exact' | 'partial' | 'over' | 'split' | 'force_post' | 'reversed' | 'partial_reversal' | 'expired' | 'refund' | 'partial_refund';
export const CARD_SCENARIOS: readonly CardScenario[] = ['exact', 'partial', 'over', 'split', 'force_post', 'reversed', 'partial_reversal', 'expired', 'refund', 'partial_refund'];

export interface Purchase {
  user: string;
  card?: string | undefined;
  /** Minor units of `currency`. */
  amount: bigint;
  currency: string;
  mcc: string;
  country: string;
  merchant?: string | undefined;
  scenario: CardScenario;
}

export interface CardNetworkFaults {
  duplicate?: number;
  /** Share of events swapped with the next one (a clearing can overtake its authorization). */
  reorder?: number;
  drop?: number;
  /** Share of extra events of a type seigo does not know. */
  unknownType?: number;
}

/** JPY per major unit, and each currency's minor-unit exponent. */
const RATES: Record<string, { jpy: number; exponent: number }> = {
  JPY: { jpy: 1, exponent: 0 }, USD: { jpy: 150.25, exponent: 2 }, EUR: { jpy: 162.5, exponent: 2 }, KRW: { jpy: 0.11, exponent: 0 },
};

/** The network's conversion: minor units of `currency` to yen, rounded half up. */
export function toJpy(amount: bigint, currency: string): bigint {
  const r = RATES[currency];
  if (!r) throw new Error(`the simulator has no rate for ${currency}`);
  const rate = BigInt(Math.round(r.jpy * 10_000));
  const den = 10n ** BigInt(r.exponent) * 10_000n;
  return (amount * rate + den / 2n) / den;
}

export class CardNetworkSimulator {
  private readonly random: () => number;
  private seq = 0;

  constructor(private readonly opts: { secret: string; seed?: number; now?: () => Date }) {
    this.random = mulberry32(opts.seed ?? 1);
  }

  private nextId(prefix: string): string {
    this.seq++;
    return `${prefix}_${(this.opts.seed ?? 1).toString(36)}_${this.seq.toString(36)}`;
  }

  private event(type: string, p: Purchase, fields: Record<string, unknown>, amount: bigint): NetworkEvent {
    const now = this.opts.now?.() ?? new Date();
    return {
      id: this.nextId('evt'), type, timestamp: now.toISOString(),
      data: {
        card_id: p.card ?? `card_${p.user}`, user_id: p.user,
        merchant: { name: p.merchant ?? `Merchant ${p.mcc}`, category_code: p.mcc, country: p.country },
        amount: { value: amount.toString(), currency: p.currency }, amount_jpy: toJpy(amount, p.currency).toString(),
        ...fields,
      },
    };
  }

  /** The events of one purchase in the order the network sends them. */
  purchase(p: Purchase): NetworkEvent[] {
    const auth = this.nextId('auth');
    const a = p.amount;
    const ev = (type: string, amount: bigint, fields: Record<string, unknown> = {}) => this.event(type, p, { authorization_id: auth, ...fields }, amount);
    const clear = (amount: bigint) => ev('clearing', amount, { clearing_id: this.nextId('clr') });
    const authorized = ev('authorization', a);
    switch (p.scenario) {
      case 'exact': return [authorized, clear(a)];
      case 'partial': return [authorized, clear((a * 7n) / 10n)];
      case 'over': return [authorized, clear((a * 115n) / 100n)];
      case 'split': return [authorized, clear(a / 2n), clear(a - a / 2n)];
      case 'force_post': return [this.event('clearing', p, { authorization_id: null, clearing_id: this.nextId('clr') }, a)];
      case 'reversed': return [authorized, ev('authorization.reversal', a)];
      case 'partial_reversal': return [authorized, ev('authorization.reversal', a / 4n), clear(a - a / 4n)];
      case 'expired': return [authorized, ev('authorization.expiry', a)];
      case 'refund': {
        const c = clear(a);
        return [authorized, c, ev('refund', a, { refund_id: this.nextId('rfd'), clearing_id: c.data.clearing_id })];
      }
      case 'partial_refund': {
        const c = clear(a);
        return [authorized, c, ev('refund', a / 3n, { refund_id: this.nextId('rfd'), clearing_id: c.data.clearing_id })];
      }
    }
  }

  /** `count` random purchases by `users` users, their events interleaved as traffic would be. */
  generate(count: number, users = 20): { purchases: Purchase[]; events: NetworkEvent[] } {
    const mccs = ['5411', '5812', '5999', '4111', '7011'];
    const currencies = ['JPY', 'JPY', 'USD', 'EUR', 'KRW'];
    const purchases: Purchase[] = [];
    const streams: NetworkEvent[][] = [];
    for (let i = 0; i < count; i++) {
      const currency = currencies[Math.floor(this.random() * currencies.length)]!;
      const major = 1 + Math.floor(this.random() * 20_000);
      const p: Purchase = {
        user: `u${Math.floor(this.random() * users)}`, currency, mcc: mccs[Math.floor(this.random() * mccs.length)]!,
        country: currency === 'JPY' ? 'JP' : currency === 'KRW' ? 'KR' : 'US',
        amount: currency === 'JPY' || currency === 'KRW' ? BigInt(major) : BigInt(major) * 10n,
        scenario: CARD_SCENARIOS[Math.floor(this.random() * CARD_SCENARIOS.length)]!,
      };
      purchases.push(p);
      streams.push(this.purchase(p));
    }
    // Interleave: take the next event of a random purchase until all are out.
    const events: NetworkEvent[] = [];
    const live = streams.filter((s) => s.length > 0);
    while (live.length > 0) {
      const i = Math.floor(this.random() * live.length);
      events.push(live[i]!.shift()!);
      if (live[i]!.length === 0) live.splice(i, 1);
    }
    return { purchases, events };
  }

  /** What actually goes over the wire: events duplicated, swapped, dropped, and unknown ones added. */
  withFaults(events: readonly NetworkEvent[], f: CardNetworkFaults): { sent: NetworkEvent[]; dropped: NetworkEvent[] } {
    const sent: NetworkEvent[] = [];
    const dropped: NetworkEvent[] = [];
    for (const e of events) {
      if (this.random() < (f.drop ?? 0)) { dropped.push(e); continue; }
      sent.push(e);
      if (this.random() < (f.duplicate ?? 0)) sent.push(e);
      if (this.random() < (f.unknownType ?? 0)) sent.push({ id: this.nextId('evt'), type: 'authorization.advice', timestamp: e.timestamp, data: { note: 'not a type seigo knows' } });
    }
    for (let i = 0; i + 1 < sent.length; i++) {
      if (this.random() < (f.reorder ?? 0)) [sent[i], sent[i + 1]] = [sent[i + 1]!, sent[i]!];
    }
    return { sent, dropped };
  }

  /** The daily clearing file: one CSV line per clearing, dropped webhooks included. */
  clearingFile(events: readonly NetworkEvent[]): string {
    const lines = ['clearing_id,authorization_id,card_id,user_id,amount,currency,amount_jpy,merchant_category,country,event_id'];
    for (const e of events.filter((x) => x.type === 'clearing')) {
      const d = e.data as { clearing_id: string; authorization_id: string | null; card_id: string; user_id: string; amount: { value: string; currency: string }; amount_jpy: string; merchant: { category_code: string; country: string } };
      lines.push([d.clearing_id, d.authorization_id ?? '', d.card_id, d.user_id, d.amount.value, d.amount.currency, d.amount_jpy, d.merchant.category_code, d.merchant.country, e.id].join(','));
    }
    return `${lines.join('\n')}\n`;
  }

  /** The request the network makes for one event: the Standard Webhooks envelope, signed; webhook-id = the event id. */
  signed(e: NetworkEvent, now = new Date()): { headers: Record<string, string>; body: string } {
    const body = JSON.stringify({ type: e.type, timestamp: e.timestamp, data: e.data });
    return { headers: { ...signedHeaders(this.opts.secret, e.id, body, now), 'content-type': 'application/json' }, body };
  }

  /** Delivers one event to seigo's webhook URL; returns the HTTP status. */
  async send(url: string, e: NetworkEvent): Promise<number> {
    const { headers, body } = this.signed(e);
    const res = await request(url, { method: 'POST', headers, body });
    await res.body.dump();
    return res.statusCode;
  }
}
