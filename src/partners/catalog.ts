// What a partner owns besides its keys: products (what its tickets are for, at which facility and
// price) and gates (where tickets are redeemed). Operators create them; partners read their own.
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';

export interface Product { id: string; partnerId: string; facility: string; name: string; price: bigint; currency: string; createdAt: Date }
export interface Gate { id: string; partnerId: string; facility: string; name: string; createdAt: Date }

const PRODUCT_COLUMNS = 'id, partner_id, facility, name, price::text AS price, currency, created_at';
const INSERT_PRODUCT = `INSERT INTO partner_products (id, partner_id, facility, name, price, currency) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${PRODUCT_COLUMNS}`;
const SELECT_PRODUCT = `SELECT ${PRODUCT_COLUMNS} FROM partner_products WHERE id = $1`;
const LIST_PRODUCTS = `SELECT ${PRODUCT_COLUMNS} FROM partner_products WHERE partner_id = $1 ORDER BY created_at, id LIMIT $2`;
const GATE_COLUMNS = 'id, partner_id, facility, name, created_at';
const INSERT_GATE = `INSERT INTO partner_gates (id, partner_id, facility, name) VALUES ($1, $2, $3, $4) RETURNING ${GATE_COLUMNS}`;
const SELECT_GATE = `SELECT ${GATE_COLUMNS} FROM partner_gates WHERE id = $1`;
const LIST_GATES = `SELECT ${GATE_COLUMNS} FROM partner_gates WHERE partner_id = $1 ORDER BY created_at, id`;

interface ProductRow { id: string; partner_id: string; facility: string; name: string; price: string; currency: string; created_at: Date }
interface GateRow { id: string; partner_id: string; facility: string; name: string; created_at: Date }

const toProduct = (r: ProductRow): Product => ({
  id: r.id, partnerId: r.partner_id, facility: r.facility, name: r.name, price: BigInt(r.price), currency: r.currency, createdAt: r.created_at,
});
const toGate = (r: GateRow): Gate => ({ id: r.id, partnerId: r.partner_id, facility: r.facility, name: r.name, createdAt: r.created_at });

export interface ProductInput { partnerId: string; facility: string; name: string; price: bigint; currency?: string | undefined }

export async function createProduct(q: Queryable, p: ProductInput): Promise<Product> {
  const r = await q.query<ProductRow>(INSERT_PRODUCT, [uuidv7(), p.partnerId, p.facility, p.name, p.price.toString(), p.currency ?? 'JPY']);
  return toProduct(r.rows[0]!);
}

export async function createGate(q: Queryable, g: { partnerId: string; facility: string; name: string }): Promise<Gate> {
  const r = await q.query<GateRow>(INSERT_GATE, [uuidv7(), g.partnerId, g.facility, g.name]);
  return toGate(r.rows[0]!);
}

/** A product by id; in a partner transaction, null for another partner's (row-level security). */
export async function getProduct(q: Queryable, id: string): Promise<Product | null> {
  const r = await q.query<ProductRow>({ name: 'partner_product', text: SELECT_PRODUCT, values: [id] });
  return r.rows[0] ? toProduct(r.rows[0]) : null;
}

export async function listProducts(q: Queryable, partnerId: string, limit = 500): Promise<Product[]> {
  return (await q.query<ProductRow>(LIST_PRODUCTS, [partnerId, limit])).rows.map(toProduct);
}

/** A gate by id; in a partner transaction, null for another partner's. */
export async function getGate(q: Queryable, id: string): Promise<Gate | null> {
  const r = await q.query<GateRow>({ name: 'partner_gate', text: SELECT_GATE, values: [id] });
  return r.rows[0] ? toGate(r.rows[0]) : null;
}

export async function listGates(q: Queryable, partnerId: string): Promise<Gate[]> {
  return (await q.query<GateRow>(LIST_GATES, [partnerId])).rows.map(toGate);
}

export const productJson = (p: Product) => ({
  id: p.id, facility: p.facility, name: p.name, price: p.price.toString(), currency: p.currency, created_at: p.createdAt,
});
export const gateJson = (g: Gate) => ({ id: g.id, facility: g.facility, name: g.name, created_at: g.createdAt });
