// Auto-approval rules, per partner: which sensitive changes may apply without a person. A rule
// covers one changed field of one plan or nothing; plans added or removed always wait. The same
// function decides a pull's changes and the dry run over past change sets.
import { z } from 'zod';
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';

export const RULE_KINDS = ['price_within', 'capacity_change', 'trusted_text'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const ruleParamsSchema = {
  /** A price (or every price by date and age group) moved by at most pct percent, and inside the plan's min/max price. */
  price_within: z.object({ pct: z.number().positive().max(100) }).strict(),
  /** A capacity change (at most max_pct percent either way when given). */
  capacity_change: z.object({ max_pct: z.number().positive().max(1000).optional() }).strict(),
  /** A trusted partner's cancellation-policy text. */
  trusted_text: z.object({}).strict(),
} as const;

export interface Rule { id: string; partnerId: string; kind: RuleKind; params: Record<string, unknown>; enabled: boolean; createdBy: string; createdAt: Date }

/** A changed field of a plan as the rules see it. */
export interface RuleInput {
  kind: string;
  field: string;
  before: unknown;
  after: unknown;
  minPrice: bigint | null;
  maxPrice: bigint | null;
  trusted: boolean;
}

const big = (v: unknown): bigint | null => {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return BigInt(v);
  return null;
};

/** |after − before| ≤ bp/10000 · before (basis points, integer arithmetic). */
export function withinBp(before: bigint, after: bigint, bp: bigint): boolean {
  const d = after > before ? after - before : before - after;
  return d * 10_000n <= bp * before;
}

const inRange = (p: bigint, i: RuleInput) => i.minPrice !== null && i.maxPrice !== null && p >= i.minPrice && p <= i.maxPrice;

interface PriceEntry { from: string | null; age_group: string; amount: string }

function pricesCovered(i: RuleInput, bp: bigint): boolean {
  if (!Array.isArray(i.before) || !Array.isArray(i.after)) return false;
  const key = (e: PriceEntry) => `${e.from ?? ''}|${e.age_group}`;
  const before = new Map((i.before as PriceEntry[]).map((e) => [key(e), big(e.amount)]));
  const after = i.after as PriceEntry[];
  if (after.length !== before.size) return false;
  return after.every((e) => {
    const b = before.get(key(e));
    const a = big(e.amount);
    return b !== undefined && b !== null && a !== null && withinBp(b, a, bp) && inRange(a, i);
  });
}

function covers(rule: Rule, i: RuleInput): boolean {
  if (!rule.enabled || i.kind !== 'changed') return false;
  switch (rule.kind) {
    case 'price_within': {
      const bp = BigInt(Math.round(Number(rule.params.pct) * 100));
      if (i.field === 'prices') return pricesCovered(i, bp);
      if (i.field !== 'price') return false;
      const b = big(i.before);
      const a = big(i.after);
      return b !== null && a !== null && withinBp(b, a, bp) && inRange(a, i);
    }
    case 'capacity_change': {
      if (i.field !== 'capacity') return false;
      const b = big(i.before);
      const a = big(i.after);
      if (b === null || a === null) return false;
      const max = rule.params.max_pct;
      return typeof max !== 'number' || withinBp(b, a, BigInt(Math.round(max * 100)));
    }
    case 'trusted_text':
      return i.field === 'cancellation_policy' && i.trusted;
  }
}

/** The first rule that covers the change, or null: it waits for a person. */
export function ruleFor(i: RuleInput, rules: readonly Rule[]): Rule | null {
  return rules.find((r) => covers(r, i)) ?? null;
}

interface RuleRow { id: string; partner_id: string; kind: RuleKind; params: Record<string, unknown>; enabled: boolean; created_by: string; created_at: Date }
const toRule = (r: RuleRow): Rule => ({ id: r.id, partnerId: r.partner_id, kind: r.kind, params: r.params, enabled: r.enabled, createdBy: r.created_by, createdAt: r.created_at });

const LIST_RULES = `SELECT id, partner_id, kind, params, enabled, created_by, created_at FROM masterdata_rules WHERE partner_id = $1 ORDER BY kind`;
const UPSERT_RULE = `
INSERT INTO masterdata_rules (id, partner_id, kind, params, enabled, created_by) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (partner_id, kind) DO UPDATE SET params = EXCLUDED.params, enabled = EXCLUDED.enabled, created_by = EXCLUDED.created_by, created_at = now()
RETURNING id, partner_id, kind, params, enabled, created_by, created_at`;

export async function listRules(q: Queryable, partnerId: string): Promise<Rule[]> {
  return (await q.query<RuleRow>(LIST_RULES, [partnerId])).rows.map(toRule);
}

/** Sets (or replaces) the partner's rule of this kind; params checked against the kind. */
export async function setRule(q: Queryable, partnerId: string, kind: RuleKind, params: unknown, enabled: boolean, actor: string): Promise<Rule> {
  const p = ruleParamsSchema[kind].parse(params ?? {});
  const r = await q.query<RuleRow>(UPSERT_RULE, [uuidv7(), partnerId, kind, JSON.stringify(p), enabled, actor]);
  return toRule(r.rows[0]!);
}

export const ruleJson = (r: Rule) => ({ id: r.id, kind: r.kind, params: r.params, enabled: r.enabled, created_by: r.createdBy, created_at: r.createdAt });
