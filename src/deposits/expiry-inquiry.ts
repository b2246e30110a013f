// Reservations (konbini, Pay-easy) past their payment deadline whose end we never heard of: the
// expiry notice (or a late paid notice) was lost. A periodic job asks the provider about each one
// and hands what it learns to the intake as a notification of its own (source 'reconciliation', in
// the provider's format as its adapter's syntheticNotification writes it), so it is applied by
// exactly the code that applies the webhook (reservation.ts): expired → the hold released, paid →
// credited, cancelled → closed. Its event id is derived from the payment and
// the status, so asking twice stores it once, and the real webhook arriving later changes nothing.
import type pg from 'pg';
import type { Clock } from '../kernel/clock.ts';
import type { Logger } from '../kernel/logger.ts';
import type { InboxWriter } from '../intake/index.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import { RESERVATION_METHODS } from './reservation.ts';

export interface ExpiryInquiryEngine {
  db: { pool: pg.Pool };
  log: Logger;
  clock: Clock;
  providers: ProviderRegistry;
  inboxWriter: InboxWriter;
}

export interface ExpiryInquiryOptions {
  /** The reservation provider (KOMOJU). */
  provider: string;
  /** How long past the deadline before asking (the provider's own notice usually comes first). */
  afterMs: number;
}

export interface ExpiryInquiry {
  /** Asks about overdue reservations; returns how many it asked about and how many notifications it stored. */
  runOnce(limit?: number): Promise<{ asked: number; stored: number }>;
}

/** The payment statuses that end a reservation (expired, paid, cancelled); the provider's adapter writes the event for each. */
const ENDED = new Set(['expired', 'captured', 'cancelled']);

/** A reservation the provider still has open is asked about again after this long. */
const ASK_AGAIN_AFTER_MS = 60 * 60_000;

export function createExpiryInquiry(engine: ExpiryInquiryEngine, opts: ExpiryInquiryOptions): ExpiryInquiry {
  const { log } = engine;
  const asked = new Map<string, number>();
  return {
    async runOnce(limit = 100) {
      const adapter = engine.providers.get(opts.provider);
      if (!adapter?.inquire || !adapter.syntheticNotification) return { asked: 0, stored: 0 };
      const inquire = adapter.inquire.bind(adapter);
      const notification = adapter.syntheticNotification.bind(adapter);
      // One that the provider still has open waits ASK_AGAIN_AFTER_MS, so that the others overdue get
      // their turn (remembered per process: asking twice is only a read).
      const now = Date.now();
      for (const [id, at] of asked) if (now - at >= ASK_AGAIN_AFTER_MS) asked.delete(id);
      const overdue = await engine.db.pool.query<{ id: string; provider_payment_id: string }>(
        `SELECT id, provider_payment_id FROM deposits
         WHERE status IN ('awaiting_payment', 'paid_preliminary') AND payment_deadline < $1 AND provider = $2
           AND method = ANY($3::text[]) AND provider_payment_id IS NOT NULL AND NOT (id = ANY($5::uuid[]))
         ORDER BY payment_deadline LIMIT $4`,
        [new Date(engine.clock.now().getTime() - opts.afterMs), opts.provider, RESERVATION_METHODS, limit, [...asked.keys()]]);
      for (const d of overdue.rows) asked.set(d.id, now);
      let stored = 0;
      for (const d of overdue.rows) {
        let payment: Record<string, unknown>;
        try {
          const r = await inquire({ id: d.id, kind: 'reserve', idempotencyKey: `deposit:${d.id}`, request: { paymentId: d.provider_payment_id } }, AbortSignal.timeout(10_000));
          if (r.status !== 'succeeded' || typeof r.response.payment !== 'object' || r.response.payment === null) {
            log.warn({ depositId: d.id, inquiry: r.status }, 'overdue reservation: the provider gave no usable answer');
            continue;
          }
          payment = r.response.payment as Record<string, unknown>;
        } catch (e) {
          log.warn({ depositId: d.id, err: (e as Error).message }, 'overdue reservation: inquiry failed; asked again later');
          continue;
        }
        const status = String(payment.status);
        if (!ENDED.has(status)) continue; // still awaiting payment at the provider (its own clock decides)
        const eventId = `seigo-inquiry-${d.provider_payment_id}-${status}`;
        const n = notification(payment, { eventId, at: engine.clock.now() });
        if (!n) continue;
        const w = await engine.inboxWriter.write({
          provider: opts.provider, eventId, source: 'reconciliation', body: n.body,
          headers: { 'content-type': 'application/json', 'x-komoju-event': n.type, 'x-seigo-origin': 'expiry-inquiry' },
        });
        if (!w.duplicate) {
          stored++;
          log.info({ depositId: d.id, paymentId: d.provider_payment_id, status }, 'overdue reservation: the provider\'s answer stored as a notification');
        }
      }
      return { asked: overdue.rows.length, stored };
    },
  };
}
