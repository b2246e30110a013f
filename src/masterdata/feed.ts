// The partner's master API (JSON): pages of product plans, each turned into staged text as it
// comes. Nothing is judged here beyond the shape of a row; the values are checked in SQL
// (stage.ts), so a CSV and an API feed are refused for the same reasons in the same words.
import { request, type Dispatcher } from 'undici';
import type { StagedRow } from './fields.ts';

/** One product plan as the partner API sends it (see src/masterdata/simulator.ts). */
export interface FeedItem {
  product_code: string;
  plan_code: string;
  facility: string;
  name: string;
  description?: string;
  images?: string[];
  hours?: string;
  /** The plan's base price in minor units: what a ticket is issued at. */
  price: string | number;
  /** Prices by date (from, YYYY-MM-DD; absent = always) and age group. */
  prices?: { from?: string; age_group: string; amount: string | number }[];
  sale_period?: { from?: string | null; until?: string | null };
  capacity?: number | null;
  cancellation_policy?: string;
  /** Percent, e.g. "10" or "8". */
  tax_rate: string | number;
}

const SCALARS = ['product_code', 'plan_code', 'facility', 'name', 'description', 'hours', 'price', 'capacity', 'cancellation_policy', 'tax_rate'] as const;

function scalar(v: unknown): string | null | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return undefined;
}

/** One feed item as staged text; a row that is not an object, or a scalar field that is not one, is marked malformed. */
export function stagedFromItem(item: unknown): StagedRow {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return { malformed: 'the row is not an object' };
  const o = item as Record<string, unknown>;
  const row: StagedRow = {};
  const bad: string[] = [];
  for (const k of SCALARS) {
    const s = scalar(o[k]);
    if (s === undefined) bad.push(`${k} is not a string or number`);
    else row[k] = s;
  }
  row.images = o.images === undefined ? null : JSON.stringify(o.images);
  row.prices = o.prices === undefined ? null : JSON.stringify(o.prices);
  const period = o.sale_period;
  if (period !== undefined && period !== null) {
    if (typeof period !== 'object' || Array.isArray(period)) bad.push('sale_period is not an object');
    else {
      const p = period as Record<string, unknown>;
      const from = scalar(p.from);
      const until = scalar(p.until);
      if (from === undefined || until === undefined) bad.push('sale_period from/until are not strings');
      row.sale_from = from ?? null;
      row.sale_until = until ?? null;
    }
  }
  if (bad.length > 0) row.malformed = bad.join('; ');
  return row;
}

export interface FeedPage { items: unknown[]; next_cursor?: string | null }

export class FeedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeedError';
  }
}

/** Every item of the partner's master, page by page (GET url?cursor=…&limit=…). */
export async function* fetchFeed(url: string, o: { dispatcher?: Dispatcher; pageSize?: number; timeoutMs?: number } = {}): AsyncGenerator<StagedRow> {
  let cursor: string | null = null;
  for (let page = 0; page < 100_000; page++) {
    const u = new URL(url);
    u.searchParams.set('limit', String(o.pageSize ?? 5000));
    if (cursor) u.searchParams.set('cursor', cursor);
    const res = await request(u, {
      method: 'GET', headers: { accept: 'application/json' },
      headersTimeout: o.timeoutMs ?? 30_000, bodyTimeout: o.timeoutMs ?? 30_000,
      ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
    }).catch((e: Error) => { throw new FeedError(`the partner API did not answer: ${e.message}`); });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new FeedError(`the partner API answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    let body: FeedPage;
    try {
      body = JSON.parse(text) as FeedPage;
    } catch {
      throw new FeedError(`the partner API answered something that is not JSON (page ${page + 1})`);
    }
    if (!body || !Array.isArray(body.items)) throw new FeedError(`page ${page + 1} has no items list`);
    for (const item of body.items) yield stagedFromItem(item);
    cursor = typeof body.next_cursor === 'string' && body.next_cursor !== '' ? body.next_cursor : null;
    if (!cursor) return;
  }
  throw new FeedError('the partner API kept sending pages (100000)');
}
