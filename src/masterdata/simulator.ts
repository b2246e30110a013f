// A partner's master system, played on loopback for the simulator and tests: products with plans,
// prices by date and age group, sale periods, capacity, cancellation policy, descriptions and
// images, served as JSON pages (GET /partners/:name/master?cursor=&limit=). Partners change their
// master day by day (seeded), and faults are injected on request: an outage, malformed rows, a
// duplicate, an impossible price.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mulberry32 } from '../kernel/prng.ts';
import type { FeedItem } from './feed.ts';

export type MasterFault = 'outage' | 'malformed' | 'duplicate' | 'impossible_price';

export interface SimPartner { name: string; items: FeedItem[]; faults: MasterFault[] }

const AGE_GROUPS = ['adult', 'child'] as const;

/** The partner's initial catalog: `products` plans (one plan per product, some products with two). */
export function initialCatalog(partner: string, products: number, seed: number): FeedItem[] {
  const rnd = mulberry32(seed);
  const items: FeedItem[] = [];
  for (let i = 0; i < products; i++) {
    const base = 1000 + Math.floor(rnd() * 90) * 100;
    items.push({
      product_code: `${partner}-p${i}`, plan_code: i % 5 === 0 ? 'premium' : 'standard', facility: `${partner}-f${i % 7}`,
      name: `${partner} product ${i}`, description: `Day pass ${i}`, images: [`https://img.example/${partner}/${i}.jpg`], hours: '09:00-17:00',
      price: String(base),
      prices: AGE_GROUPS.map((g) => ({ age_group: g, amount: String(g === 'adult' ? base : base / 2) })),
      sale_period: { from: '2026-01-01T00:00:00Z', until: '2027-12-31T15:00:00Z' }, capacity: 100 + Math.floor(rnd() * 900),
      cancellation_policy: 'free until the day before', tax_rate: '10',
    });
  }
  return items;
}

export interface DayChanges { prices: number; texts: number; capacities: number; policies: number }

/**
 * One simulated day at the partner: some prices move (most by a little, some by a lot), some
 * descriptions, capacities and policies change.
 */
export function changeDay(items: FeedItem[], rnd: () => number, rate = 0.01): DayChanges {
  const out: DayChanges = { prices: 0, texts: 0, capacities: 0, policies: 0 };
  for (const it of items) {
    const r = rnd();
    if (r < rate) {
      const step = rnd() < 0.7 ? 1 + (rnd() < 0.5 ? -0.03 : 0.03) : 1 + (rnd() < 0.5 ? -0.2 : 0.25);
      const p = BigInt(Math.max(100, Math.round(Number(it.price) * step / 10) * 10));
      it.price = p.toString();
      it.prices = AGE_GROUPS.map((g) => ({ age_group: g, amount: (g === 'adult' ? p : p / 2n).toString() }));
      out.prices++;
    } else if (r < rate * 2) {
      it.description = `${it.description ?? ''} (updated)`.slice(-500);
      out.texts++;
    } else if (r < rate * 2.5) {
      it.capacity = Math.max(0, (it.capacity ?? 100) + Math.floor(rnd() * 40) - 20);
      out.capacities++;
    } else if (r < rate * 2.6) {
      it.cancellation_policy = rnd() < 0.5 ? 'free until two days before' : 'free until the day before';
      out.policies++;
    }
  }
  return out;
}

/** The page the partner API serves, with the partner's injected faults (each consumed by one full pull). */
function page(p: SimPartner, cursor: number, limit: number): { status: number; body: unknown } {
  if (p.faults.includes('outage')) return { status: 503, body: { error: 'maintenance' } };
  let items: unknown[] = p.items.slice(cursor, cursor + limit);
  if (cursor === 0) {
    if (p.faults.includes('malformed')) items = [...items.slice(0, 1), { product_code: 'broken', price: 'twelve' }, ...items.slice(1)];
    if (p.faults.includes('duplicate') && items[0]) items = [...items, items[0]];
    if (p.faults.includes('impossible_price') && p.items[1]) items = [items[0], { ...p.items[1], price: '-500' }, ...items.slice(2)];
  }
  const next = cursor + limit < p.items.length ? String(cursor + limit) : null;
  return { status: 200, body: { items, next_cursor: next } };
}

export interface MasterSimulator {
  url: string;
  partners: Map<string, SimPartner>;
  /** The master API of one partner. */
  feedUrl(partner: string): string;
  close(): Promise<void>;
}

export async function startMasterSimulator(): Promise<MasterSimulator> {
  const partners = new Map<string, SimPartner>();
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const m = /^\/partners\/([^/]+)\/master$/.exec(u.pathname);
    const p = m ? partners.get(decodeURIComponent(m[1]!)) : undefined;
    if (req.method !== 'GET' || !p) { res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}'); return; }
    const cursor = Number(u.searchParams.get('cursor') ?? '0') || 0;
    const limit = Math.min(10_000, Number(u.searchParams.get('limit') ?? '1000') || 1000);
    const out = page(p, cursor, limit);
    if (out.status !== 200 || out.body === null || (out.body as { next_cursor: string | null }).next_cursor === null) p.faults = [];
    res.writeHead(out.status, { 'content-type': 'application/json' }).end(JSON.stringify(out.body));
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url, partners,
    feedUrl: (partner) => `${url}/partners/${encodeURIComponent(partner)}/master`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
