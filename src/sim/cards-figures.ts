// The figures of `seigo sim cards`: the points each user should hold, computed here from the card
// network's events alone (never through src/points), against what the ledger, the outbox and the NATS
// stream hold; and the checks a run must pass.
import type pg from 'pg';

/** A network event as the harness sent it (the simulator's shape). */
export interface SentEvent { id: string; type: string; data: Record<string, unknown> }
/** The points rules the run configured: a rate in basis points per merchant category, else the default. */
export interface SimRules { rules: { name: string; merchantCategories: string[]; rateBasisPoints: number }[]; defaultRateBasisPoints: number }
export interface UserPoints { provisional: bigint; confirmed: bigint }

interface Purchase { user: string; mcc: string; auth: bigint; authSeen: boolean; reversed: bigint; expired: boolean; cleared: bigint; refunded: bigint }

const KNOWN = new Set(['authorization', 'authorization.reversal', 'authorization.expiry', 'clearing', 'refund']);

const rateOf = (r: SimRules, mcc: string) => r.rules.find((x) => x.merchantCategories.includes(mcc))?.rateBasisPoints ?? r.defaultRateBasisPoints;
const worth = (yen: bigint, bp: number) => (yen > 0n ? (yen * BigInt(bp)) / 10_000n : 0n);

/**
 * What each user's points must be after these events, each counted once whatever its repeats and order:
 * provisional on what is authorized and neither reversed nor cleared (nothing once the authorization expired),
 * confirmed on what cleared less what was refunded; per purchase, at its merchant category's rate, rounded down.
 */
export function expectedPoints(events: readonly SentEvent[], rules: SimRules): Map<string, UserPoints> {
  const purchases = new Map<string, Purchase>();
  const seen = new Set<string>();
  for (const e of events) {
    if (!KNOWN.has(e.type) || seen.has(e.id)) continue;
    seen.add(e.id);
    const d = e.data as { authorization_id: string | null; clearing_id?: string; refund_id?: string; user_id: string; amount_jpy: string; merchant: { category_code: string } };
    const key = d.authorization_id ?? `clearing:${d.clearing_id ?? d.refund_id}`;
    let p = purchases.get(key);
    if (!p) {
      p = { user: d.user_id, mcc: d.merchant.category_code, auth: 0n, authSeen: false, reversed: 0n, expired: false, cleared: 0n, refunded: 0n };
      purchases.set(key, p);
    }
    const yen = BigInt(d.amount_jpy);
    if (e.type === 'authorization') { p.auth += yen; p.authSeen = true; }
    if (e.type === 'authorization.reversal') p.reversed += yen;
    if (e.type === 'authorization.expiry') p.expired = true;
    if (e.type === 'clearing') p.cleared += yen;
    if (e.type === 'refund') p.refunded += yen;
  }
  const users = new Map<string, UserPoints>();
  for (const p of purchases.values()) {
    const bp = rateOf(rules, p.mcc);
    const u = users.get(p.user) ?? { provisional: 0n, confirmed: 0n };
    if (p.authSeen && !p.expired) u.provisional += worth(p.auth - p.reversed - p.cleared, bp);
    u.confirmed += worth(p.cleared - p.refunded, bp);
    users.set(p.user, u);
  }
  return users;
}

export interface CardFigures {
  events: number;
  authorizations: number;
  cleared: number;
  reversed: number;
  points_expected: number;
  points_awarded: number;
  /** Users whose provisional or confirmed points differ from what the events give. */
  points_mismatches: number;
  /** Users' points accounts below zero. */
  negative_balances: number;
  /** Σ of every PTS balance: every posting is balanced against the issuing account, so 0. */
  ledger_sum: number;
  /** Messages on the NATS stream, and how many of those repeat a message id already there. */
  nats_published: number;
  nats_duplicates: number;
  /** Accepted events without their card.* message, messages missing from the stream, deliveries never delivered. */
  lost: number;
}

/** The five figures that must be 0 for a run to pass. */
export const MUST_BE_ZERO = ['points_mismatches', 'negative_balances', 'ledger_sum', 'nats_duplicates', 'lost'] as const;

export function cardViolations(f: CardFigures): string[] {
  return MUST_BE_ZERO.filter((k) => f[k] !== 0).map((k) => `${k} = ${f[k]}`);
}

const PTS_BALANCES = `
SELECT a.owner, a.kind, sum(b.posted)::text AS posted FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
WHERE a.currency = 'PTS' GROUP BY a.owner, a.kind`;
const EVENTS_WITHOUT_MESSAGE = `
SELECT count(*)::int AS n FROM unnest($1::text[]) AS e(id)
WHERE NOT EXISTS (SELECT 1 FROM outbox_messages m WHERE m.topic LIKE 'card.%' AND m.payload->>'event_id' = e.id)`;
const CARD_MESSAGES = `SELECT id::text FROM outbox_messages WHERE topic LIKE 'card.%'`;
const UNDELIVERED = `
SELECT count(*)::int AS n FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
WHERE s.name = ANY($1::text[]) AND d.status <> 'delivered'`;

export interface FigureInputs {
  pool: pg.Pool;
  /** Every event the network made (before faults), for the counts. */
  generated: readonly SentEvent[];
  /** What seigo acknowledged (2xx), repeats included. */
  accepted: readonly SentEvent[];
  rules: SimRules;
  /** The Seigo-Message-Id of every message on the stream, in stream order, repeats included. */
  streamMessageIds: readonly string[];
  /** Subscriptions whose deliveries must all end delivered. */
  subscriptions: readonly string[];
}

export async function computeCardFigures(i: FigureInputs): Promise<CardFigures> {
  const count = (t: string) => i.generated.filter((e) => e.type === t).length;
  const expected = expectedPoints(i.accepted, i.rules);
  const balances = (await i.pool.query<{ owner: string; kind: string; posted: string }>(PTS_BALANCES)).rows;
  const actual = new Map<string, UserPoints>();
  let ledgerSum = 0n;
  let negative = 0;
  for (const b of balances) {
    const posted = BigInt(b.posted);
    ledgerSum += posted;
    if (b.kind !== 'points' && b.kind !== 'points_provisional') continue;
    if (posted < 0n) negative++;
    const u = actual.get(b.owner) ?? { provisional: 0n, confirmed: 0n };
    if (b.kind === 'points') u.confirmed += posted;
    else u.provisional += posted;
    actual.set(b.owner, u);
  }
  const sum = (m: Map<string, UserPoints>) => [...m.values()].reduce((a, u) => a + u.provisional + u.confirmed, 0n);
  let mismatches = 0;
  for (const user of new Set([...expected.keys(), ...actual.keys()])) {
    const [e, a] = [expected.get(user), actual.get(user)];
    if ((e?.provisional ?? 0n) !== (a?.provisional ?? 0n) || (e?.confirmed ?? 0n) !== (a?.confirmed ?? 0n)) mismatches++;
  }
  const knownIds = [...new Set(i.accepted.filter((e) => KNOWN.has(e.type)).map((e) => e.id))];
  const withoutMessage = (await i.pool.query<{ n: number }>(EVENTS_WITHOUT_MESSAGE, [knownIds])).rows[0]!.n;
  const onStream = new Set(i.streamMessageIds);
  const notOnStream = (await i.pool.query<{ id: string }>(CARD_MESSAGES)).rows.filter((r) => !onStream.has(r.id)).length;
  const undelivered = (await i.pool.query<{ n: number }>(UNDELIVERED, [i.subscriptions])).rows[0]!.n;
  return {
    events: i.generated.length, authorizations: count('authorization'), cleared: count('clearing'), reversed: count('authorization.reversal'),
    points_expected: Number(sum(expected)), points_awarded: Number(sum(actual)), points_mismatches: mismatches, negative_balances: negative,
    ledger_sum: Number(ledgerSum), nats_published: i.streamMessageIds.length, nats_duplicates: i.streamMessageIds.length - onStream.size,
    lost: withoutMessage + notOnStream + undelivered,
  };
}
