// Partner routes for tickets: issue, read, cancel and refund; redeem at a gate; a
// gate's offline manifest and upload. Registered inside the partner plugin (partner.ts), so its
// hooks authenticate, check the scope, limit the rate and honour Idempotency-Key first.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import { getProduct, withPartner } from '../partners/index.ts';
import {
  MAX_QUANTITY, Redeemer, closeTicket, facilityToday, getTicket, issueTickets, manifest, redeem, scanOf, ticketIdOf, syncGate, ticketJson, verifyBatch,
  type CloseError, type IssueError, type RedeemError, type Redeemed, type SyncError, type TicketKeys,
} from '../tickets/index.ts';
import { PARTNER_PREFIX } from './partner.ts';
import { route, type OpenApiRegistry } from './route.ts';

const uuid = z.string().uuid();
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');
const qr = z.string().min(1).max(2048);
const instant = z.string().datetime({ offset: true }).transform((s) => new Date(s));

const QR_DETAIL: Record<string, string> = {
  qr_invalid: 'the QR payload is not a ticket signed by seigo',
  qr_expired: 'the QR payload is past its validity',
  qr_not_yet_valid: 'the QR payload is not valid yet',
};

function redeemError(e: RedeemError): SeigoError {
  switch (e.code) {
    case 'qr_invalid': case 'qr_expired': case 'qr_not_yet_valid': return new SeigoError(e.code, QR_DETAIL[e.code]!, 422);
    case 'gate_not_found': return new NotFoundError(e.code, 'no such gate');
    case 'ticket_not_found': return new NotFoundError(e.code, 'no such ticket');
    case 'wrong_facility':
      return new SeigoError(e.code, `the ticket is for facility ${e.ticketFacility}, this gate is at ${e.gateFacility}`, 422, false, { ticket_facility: e.ticketFacility, gate_facility: e.gateFacility });
    case 'ticket_not_valid_now':
      return new SeigoError(e.code, 'the ticket is not valid at this time', 422, false, { valid_from: e.validFrom, valid_until: e.validUntil });
    case 'already_redeemed':
      return new SeigoError(e.code, `the ticket was already redeemed at ${e.redeemedAt.toISOString()}`, 409, false,
        { redeemed_at: e.redeemedAt, gate_id: e.gateId, gate_time: e.gateTime });
    case 'ticket_cancelled': case 'ticket_refunded': return new SeigoError(e.code, `the ticket is ${e.code.slice(7)}`, 409);
  }
}

function issueError(e: IssueError): SeigoError {
  return e.code === 'product_not_found' ? new NotFoundError(e.code, 'no such product') : new SeigoError(e.code, e.detail, 422);
}
function closeError(e: CloseError): SeigoError {
  return e.code === 'ticket_not_found' ? new NotFoundError(e.code, 'no such ticket')
    : new SeigoError(e.code, `only an unused ticket can be cancelled or refunded; this one is ${e.status}`, 409, false, { ticket_status: e.status });
}
function syncError(e: SyncError): SeigoError {
  switch (e.code) {
    case 'gate_not_found': return new NotFoundError(e.code, 'no such gate');
    case 'invalid_batch': return new SeigoError(e.code, `the batch was refused whole: ${e.errors.map((x) => `#${x.index} ${x.code}`).join(', ')}`, 422, false, { errors: e.errors });
    case 'batch_mismatch': return new SeigoError(e.code, 'this batch id was already uploaded with other redemptions; use a new batch id', 422);
  }
}

const scanSchema = z.object({ qr: qr.optional(), ticket_id: uuid.optional(), gate_time: instant }).strict()
  .refine((s) => s.qr !== undefined || s.ticket_id !== undefined, 'needs qr or ticket_id');

export function partnerTicketRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry, keys: TicketKeys): void {
  const pool = engine.partnerDb.pool;
  const P = PARTNER_PREFIX;
  const now = () => engine.clock.now();
  const redeemer = new Redeemer(pool, { maxInFlight: Math.max(1, Math.floor(engine.config.partners.pool.max / 2)) });

  route(app, registry, {
    method: 'POST', url: `${P}/tickets`, tags: ['partner'], partnerScope: 'tickets:issue', responseStatus: 201,
    errors: { 404: ['product_not_found'], 422: ['invalid_date'] },
    summary: 'Issue tickets for a product and a day, each with a QR payload signed by seigo (Ed25519)',
    body: z.object({ product_id: uuid, date: day, quantity: z.number().int().min(1).max(MAX_QUANTITY).default(1) }).strict(),
  }, async ({ body, req }) => {
    const partnerId = req.partner!.partnerId;
    const r = await withPartner(pool, partnerId, async (tx) =>
      issueTickets(tx, keys, { partnerId, product: await getProduct(tx, body.product_id), date: body.date, quantity: body.quantity, now: now() }));
    if (!r.ok) throw issueError(r.error);
    return { issue_id: r.value.issueId, tickets: r.value.tickets.map(ticketJson) };
  });

  route(app, registry, {
    method: 'GET', url: `${P}/tickets/:id`, tags: ['partner'], partnerScope: 'tickets:read', errors: { 404: ['ticket_not_found'] }, summary: 'One of this partner\'s tickets',
    params: z.object({ id: uuid }),
  }, async ({ params, req }) => {
    const t = await withPartner(pool, req.partner!.partnerId, (tx) => getTicket(tx, params.id));
    if (!t) throw new NotFoundError('ticket_not_found', 'no such ticket');
    return ticketJson(t);
  });

  for (const [action, to] of [['cancel', 'cancelled'], ['refund', 'refunded']] as const) {
    route(app, registry, {
      method: 'POST', url: `${P}/tickets/:id/${action}`, tags: ['partner'], partnerScope: 'tickets:issue',
      errors: { 404: ['ticket_not_found'], 409: ['ticket_not_unused'] },
      summary: `${action === 'cancel' ? 'Cancel' : 'Refund'} an unused ticket: gates refuse it and its sale is reversed in the ledger`,
      params: z.object({ id: uuid }),
    }, async ({ params, req }) => {
      const partnerId = req.partner!.partnerId;
      const r = await withPartner(pool, partnerId, (tx) => closeTicket(tx, partnerId, params.id, to));
      if (!r.ok) throw closeError(r.error);
      return ticketJson(r.value);
    });
  }

  route(app, registry, {
    method: 'POST', url: `${P}/redemptions`, tags: ['partner'], partnerScope: 'tickets:redeem', responseStatus: 201,
    errors: {
      404: ['gate_not_found', 'ticket_not_found'], 409: ['already_redeemed', 'ticket_cancelled', 'ticket_refunded'],
      422: ['qr_invalid', 'qr_expired', 'qr_not_yet_valid', 'wrong_facility', 'ticket_not_valid_now'],
    },
    summary: 'Redeem a ticket at a gate, exactly once (409 already_redeemed with when and where otherwise)',
    body: z.object({ gate_id: uuid, qr: qr.optional(), ticket_id: uuid.optional() }).strict()
      .refine((b) => (b.qr === undefined) !== (b.ticket_id === undefined), 'needs exactly one of qr and ticket_id'),
  }, async ({ body, req }) => {
    const partnerId = req.partner!.partnerId;
    const at = now();
    const answer = (r: Redeemed) => ({ redemption_id: r.redemptionId, ticket_id: r.ticketId, gate_id: r.gateId, redeemed_at: r.redeemedAt });
    // The common case, batched: the token is the one seigo issued (compared in the database).
    const ticketId = body.qr === undefined ? body.ticket_id! : ticketIdOf(body.qr);
    const fast = ticketId ? await redeemer.tryRedeem({ partnerId, gateId: body.gate_id, ticketId, qr: body.qr ?? null, now: at }) : null;
    if (fast) return answer(fast);
    // Anything else, one by one: the signature and validity first, then why the ticket cannot be redeemed.
    const scan = await scanOf(keys, { qr: body.qr, ticketId: body.ticket_id }, at);
    if (!scan.ok) throw redeemError(scan.error);
    const r = await withPartner(pool, partnerId, (tx) => redeem(tx, { partnerId, gateId: body.gate_id, scan: scan.value, now: at }));
    if (!r.ok) throw redeemError(r.error);
    return answer(r.value);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/gates/:gate/manifest`, tags: ['partner'], partnerScope: 'gates:sync', errors: { 404: ['gate_not_found'] },
    summary: 'What a gate needs offline for a day: the verification keys (JWK) and the revoked tickets',
    params: z.object({ gate: uuid }), query: z.object({ date: day.optional() }),
  }, async ({ params, query, req }) => {
    const partnerId = req.partner!.partnerId;
    const date = query.date ?? facilityToday(now());
    const m = await withPartner(pool, partnerId, (tx) => manifest(tx, keys, partnerId, params.gate, date));
    if (!m) throw new NotFoundError('gate_not_found', 'no such gate');
    return { gate_id: m.gateId, facility: m.facility, date: m.date, keys: m.keys, revoked: m.revoked, issued_at: now() };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/gates/:gate/sync`, tags: ['partner'], partnerScope: 'gates:sync', errors: { 404: ['gate_not_found'], 422: ['invalid_batch', 'batch_mismatch'] },
    summary: 'Upload what a gate redeemed offline; idempotent per batch_id; the earliest scan by gate time wins',
    params: z.object({ gate: uuid }),
    body: z.object({ batch_id: z.string().min(1).max(200), redemptions: z.array(scanSchema).min(1).max(1000) }).strict(),
  }, async ({ params, body, req, reply }) => {
    const partnerId = req.partner!.partnerId;
    const scans = body.redemptions.map((s) => ({ qr: s.qr, ticketId: s.ticket_id, gateTime: s.gate_time }));
    const batch = await verifyBatch(keys, scans, now());
    const r = await withPartner(pool, partnerId, (tx) => syncGate(tx, { partnerId, gateId: params.gate, batchId: body.batch_id, batch }));
    if (!r.ok) throw syncError(r.error);
    if (r.value.replayed) reply.header('idempotent-replayed', 'true');
    const x = r.value.result;
    return {
      batch_id: x.batchId, gate_id: x.gateId, received: x.received, counts: x.counts,
      results: x.results.map((s) => ({ index: s.index, ticket_id: s.ticketId, redemption_id: s.redemptionId, outcome: s.outcome, ...(s.reason ? { reason: s.reason } : {}) })),
    };
  });
}
