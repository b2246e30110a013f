// KOMOJU's wire shapes (Payments API v1 and webhook events) as zod schemas, and their translation
// into seigo's terms. Shared by the adapter (which validates what arrives) and the simulator (which
// produces the same shapes), so the two cannot drift apart silently.
import { z } from 'zod';

/** Konbini chains KOMOJU accepts in `payment_details[store]`. */
export const KONBINI_STORES = ['lawson', 'family-mart', 'seven-eleven', 'daily-yamazaki', 'ministop', 'seicomart'] as const;
export type KonbiniStore = (typeof KONBINI_STORES)[number];

/** Our name for the method ↔ KOMOJU's `payment_details.type`. */
export type ReservationMethod = 'konbini' | 'payeasy' | 'bank_transfer';
export const KOMOJU_TYPE: Readonly<Record<ReservationMethod, string>> = { konbini: 'konbini', payeasy: 'pay_easy', bank_transfer: 'bank_transfer' };
export function methodOf(komojuType: string | undefined): ReservationMethod | undefined {
  switch (komojuType) {
    case 'konbini': return 'konbini';
    case 'pay_easy': return 'payeasy';
    case 'bank_transfer': return 'bank_transfer';
    default: return undefined;
  }
}

export const PAYMENT_STATUSES = ['pending', 'authorized', 'captured', 'refunded', 'cancelled', 'expired', 'failed'] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

// Only what we read is checked; everything else is kept as received (`loose`) for the raw record.
const nullableString = z.string().nullish();
export const paymentDetailsSchema = z.looseObject({
  type: z.string(),
  email: nullableString,
  // konbini: the receipt (payment number) and, for some chains, a confirmation code.
  store: nullableString,
  receipt: nullableString,
  confirmation_code: nullableString,
  instructions_url: nullableString,
  // Pay-easy: 収納機関番号 / お客様番号 / 確認番号.
  bank_id: nullableString,
  customer_id: nullableString,
  confirmation_id: nullableString,
  // 銀行振込 bank transfer: the virtual account the customer pays into.
  bank_name: nullableString,
  account_branch_name: nullableString,
  account_number: nullableString,
  account_type: nullableString,
  account_name: nullableString,
  /** Simulator extension (not documented by KOMOJU): the payer's name as the bank reported it (振込依頼人名, kana). */
  payer_name_kana: nullableString,
  /** Simulator extension: the amount actually transferred when it differs from the amount asked for. */
  transferred_amount: z.number().int().nullish(),
});
export type PaymentDetails = z.infer<typeof paymentDetailsSchema>;

export const paymentSchema = z.looseObject({
  id: z.string().min(1),
  resource: z.literal('payment').optional(),
  status: z.string(),
  amount: z.number().int().nonnegative(),
  total: z.number().int().nonnegative().nullish(),
  currency: z.string().min(3).max(3),
  payment_deadline: nullableString,
  payment_details: paymentDetailsSchema.nullish(),
  captured_at: nullableString,
  created_at: z.string(),
  external_order_num: nullableString,
});
export type KomojuPayment = z.infer<typeof paymentSchema>;

export const paymentListSchema = z.looseObject({
  resource: z.literal('list').optional(),
  total: z.number().int().nonnegative(),
  page: z.number().int().positive(),
  per_page: z.number().int().positive(),
  last_page: z.number().int().nonnegative(),
  data: z.array(z.unknown()),
});

export const errorBodySchema = z.object({
  error: z.looseObject({ code: z.string().default('unknown'), message: z.string().default(''), param: z.string().nullish() }),
});

/**
 * Preliminary (速報) and final (確報) paid notices. KOMOJU documents no such split: its only paid
 * event is `payment.captured`, which we treat as the final notice. Japanese konbini processors do
 * send a 入金速報 when the till scans the slip — not a promise of payment, it can be withdrawn
 * (速報取消) — and the confirmation days later. The simulator plays that with these two
 * KOMOJU-shaped event types, an extension of ours that a real KOMOJU account never sends.
 */
export const PRELIMINARY_PAID_EVENT = 'payment.preliminary_paid';
export const PRELIMINARY_CANCELLED_EVENT = 'payment.preliminary_paid.cancelled';

export const eventSchema = z.looseObject({
  id: z.string().min(1).max(255),
  type: z.string().min(1).max(200),
  resource: z.literal('event'),
  data: z.record(z.string(), z.unknown()),
  created_at: z.string().optional(),
});
export type KomojuEvent = z.infer<typeof eventSchema>;

/** The payment in seigo's words: what a canonical event or an operation response carries. */
export function describePayment(p: KomojuPayment): Record<string, unknown> {
  const d = p.payment_details;
  const out: Record<string, unknown> = {
    provider_payment_id: p.id,
    status: p.status,
    amount: String(p.amount),
    currency: p.currency,
    method: methodOf(d?.type ?? undefined) ?? d?.type ?? null,
    payment_deadline: p.payment_deadline ?? null,
  };
  if (p.total != null) out.total = String(p.total);
  if (p.external_order_num) out.external_order_num = p.external_order_num;
  if (p.captured_at) out.captured_at = p.captured_at;
  if (d) {
    const keep = (k: keyof PaymentDetails, as: string = k) => {
      const v = d[k];
      if (v !== null && v !== undefined) out[as] = v;
    };
    switch (d.type) {
      case 'konbini':
        keep('store'); keep('receipt'); keep('confirmation_code'); keep('instructions_url');
        break;
      case 'pay_easy':
        keep('bank_id'); keep('customer_id'); keep('confirmation_id'); keep('instructions_url');
        break;
      case 'bank_transfer': {
        keep('payer_name_kana', 'payer_name');
        if (d.transferred_amount != null) out.transferred_amount = String(d.transferred_amount);
        if (d.account_number) {
          out.virtual_account = {
            bank_name: d.bank_name ?? null, branch_name: d.account_branch_name ?? null,
            account_type: d.account_type ?? null, account_number: d.account_number, account_name: d.account_name ?? null,
          };
        }
        keep('instructions_url');
        break;
      }
    }
  }
  return out;
}
