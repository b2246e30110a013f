// The fields of a partner's master (one row per product plan), how each is classed, and the text
// columns every source is staged into: sensitive fields wait for approval (or a rule), others apply at once.

/** Fields a person must approve a change of: what a customer pays, when and how much can be sold, and on what terms. */
export const SENSITIVE_FIELDS = ['price', 'prices', 'sale_from', 'sale_until', 'capacity', 'cancellation_policy', 'tax_rate_bp'] as const;
/** Descriptive fields: text, images, hours (and the facility the plan is sold at). */
export const PLAIN_FIELDS = ['facility', 'name', 'description', 'images', 'hours'] as const;
export const FIELDS = [...PLAIN_FIELDS, ...SENSITIVE_FIELDS] as const;
export type Field = (typeof FIELDS)[number];
/** A whole plan added or removed: field `*`, always waiting (it makes something sellable, or stops it). */
export const WHOLE = '*';

export const isSensitive = (field: string): boolean => field === WHOLE || (SENSITIVE_FIELDS as readonly string[]).includes(field);

/** The staged columns (all text; checked and cast in SQL), in COPY order after `line`. */
export const STAGE_COLUMNS = [
  'product_code', 'plan_code', 'facility', 'name', 'description', 'images', 'hours', 'price', 'prices',
  'sale_from', 'sale_until', 'capacity', 'cancellation_policy', 'tax_rate', 'malformed',
] as const;
export type StageColumn = (typeof STAGE_COLUMNS)[number];
export type StagedRow = Partial<Record<StageColumn, string | null>>;

/** The highest price a feed may carry (minor units): anything above is refused as impossible. */
export const MAX_PRICE = 100_000_000n;
