// Composition: builds every part of seigo from explicit resources (config, db, log, clock) with
// no container. The api and worker roles take what they need from the engine.
import type { Dispatcher } from 'undici';
import type { Clock } from '../kernel/clock.ts';
import { systemClock } from '../kernel/clock.ts';
import type { Config } from '../kernel/config.ts';
import { createDb, type Db } from '../kernel/db.ts';
import { egressAgent, egressPolicy } from '../kernel/egress.ts';
import type { Logger } from '../kernel/logger.ts';
import { createMetrics, type Metrics } from '../kernel/metrics.ts';
import { EventHandlers, InboxProcessor, InboxWriter } from '../intake/index.ts';
import { Consumers, HandlerDeliveryProcessor, HttpDeliveryProcessor, NatsDeliveryProcessor, NatsLink } from '../outbox/index.ts';
import { Operations, Resilience } from '../operations/index.ts';
import { buildProviders, type ProviderRegistry } from '../providers/registry.ts';
import type { ProviderAdapter } from '../providers/types.ts';
import { WorkerRuntime, type PeriodicJob, type WorkLoop } from '../worker/runtime.ts';
import { expireHolds } from '../ledger/index.ts';
import { createDeposits, type BankTransferPolicy, type Deposits } from '../deposits/index.ts';
import { createRefunds, type Refunds } from '../deposits/refunds.ts';
import { createExpiryInquiry, type ExpiryInquiry } from '../deposits/expiry-inquiry.ts';
import { reconcileDepsOf, reconcileJobs, reimportRowAction } from '../reconcile/index.ts';
import { publishDigest } from '../digest/digest.ts';
import { Sagas } from '../sagas/index.ts';
import { createIap, type Iap } from '../iap/index.ts';
import { expireLots, pointsConsumer } from '../points/index.ts';
import { createPartnerDb, type PartnerDb } from '../partners/index.ts';
import { TicketKeys, settleTickets } from '../tickets/index.ts';
import { masterdataJobs, publishMasterDigests } from '../masterdata/index.ts';
import { HealthRollup, reportBreakers } from '../health/index.ts';
import { evaluateAlerts } from '../alerts/index.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { CaseActions, detectCases, redriveDeliveryAction, replayInboxAction, retryOperationAction } from '../cases/index.ts';

export interface EngineOptions {
  config: Config;
  db: Db;
  log: Logger;
  clock?: Clock;
  /** Provider adapters beyond the ones the config declares (your own, or a simulator's). */
  providers?: readonly ProviderAdapter[];
  metrics?: Metrics;
}

export interface Engine {
  config: Config;
  db: Db;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  providers: ProviderRegistry;
  /** Register handlers for canonical provider events. */
  handlers: EventHandlers;
  /** Register in-process consumers for subscriptions with a handler target. */
  consumers: Consumers;
  operations: Operations;
  /** Sagas: modules define theirs here; the worker's `sagas` loop advances and resumes them. */
  sagas: Sagas;
  /** In-app purchases (config `iap`): the purchase saga and the stores' verifiers; undefined when not configured. */
  iap: Iap | undefined;
  /** Deposits for the wallet's backend (card realtime flow). */
  deposits: Deposits;
  /** Refunds of escrowed money to the users' registered bank accounts. */
  refunds: Refunds;
  /** Asks the provider about reservations past their deadline whose expiry notice never came. */
  expiryInquiry: ExpiryInquiry;
  /** What resolving a case may do, by name; modules register theirs (reconciliation: reimport_row). */
  caseActions: CaseActions;
  /** How transfers are booked whatever brings them (file import, bank webhook, reconciliation): the configured limit. */
  bankTransferPolicy: BankTransferPolicy;
  /** Partner traffic's own bounded pool, as the seigo_partner role (row-level security by partner). */
  partnerDb: PartnerDb;
  /** Today's ticket signing key and the public keys gates verify with (src/tickets/qr.ts). */
  ticketKeys: TicketKeys;
  inboxWriter: InboxWriter;
  inbox: InboxProcessor;
  handlerDeliveries: HandlerDeliveryProcessor;
  httpDeliveries: HttpDeliveryProcessor;
  /** Deliveries to NATS JetStream targets; connects to config.nats on first use. */
  natsDeliveries: NatsDeliveryProcessor;
  egress: Dispatcher;
  /** This process's request, error and latency counts (src/health), added to the database every health.flushIntervalMs. */
  health: HealthRollup;
  /** Writes the counts so far and this process's breaker states now (also on close). */
  flushHealth(): Promise<void>;
  createWorker(role?: string, extra?: { loops?: WorkLoop[]; periodic?: PeriodicJob[] }): WorkerRuntime;
  close(): Promise<void>;
}

export function createEngine(opts: EngineOptions): Engine {
  const { config, db, log } = opts;
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? createMetrics(db.pool);
  const egress = egressAgent(egressPolicy(config.outbound.allow));
  const providers = buildProviders(config, opts.providers, egress);
  const handlers = new EventHandlers();
  const consumers = new Consumers();
  const health = new HealthRollup(() => clock.now().getTime());
  const resilience = new Resilience(config.endpoints);
  const operations = new Operations({
    pool: db.pool, providers, resilience, log, clock,
    inquiryScheduleMs: config.operations.inquirySchedule, unknownDeadlineMs: config.operations.unknownDeadlineMs,
    stalePendingMs: config.operations.stalePendingMs,
    onTransition: (provider, status) => metrics.operationTransitions.inc({ provider, status }),
    onCall: (provider, ms, error) => health.record('provider', provider, ms, error),
  });
  const sagas = new Sagas({ pool: db.pool, log });
  const iap = createIap({ pool: db.pool, operations, sagas, handlers, config, dispatcher: egress });
  // The intake writer has a small pool of its own, so acknowledgements never wait for a
  // connection behind admin queries or workers; one connection per batch in flight, plus one.
  const intakeDb = createDb(db.url, { max: config.intake.commitsInFlight + 1, applicationName: 'seigo-intake', log });
  const partnerDb = createPartnerDb(db.url, { max: config.partners.pool.max, acquireTimeoutMs: config.partners.pool.acquireTimeoutMs, log });
  const ticketKeys = new TicketKeys(db.pool, partnerDb.pool);
  const inboxWriter = new InboxWriter(intakeDb.pool, { maxBatch: config.intake.batchMaxRows, maxInFlight: config.intake.commitsInFlight, onBatch: (n) => metrics.intakeBatchRows.observe(n) });
  const inbox = new InboxProcessor({
    pool: db.pool, providers, handlers, log, retryScheduleMs: config.intake.retrySchedule,
    onProcessed: (provider, outcome) => metrics.inboxProcessed.inc({ provider, outcome }),
  });
  // How transfers are booked, whichever path brings them: the file import, the bank's webhooks, reconciliation.
  const bankTransferPolicy: BankTransferPolicy = { defaultLimit: BigInt(config.deposits.defaultLimit) };
  const deposits = createDeposits({ db, log, operations, handlers }, {
    provider: config.deposits.cardProvider, defaultLimit: BigInt(config.deposits.defaultLimit),
    reservationProvider: config.deposits.reservationProvider, creditOn: config.deposits.creditOn,
    bankTransferExpiryMs: config.deposits.bankTransferExpiryMs, bankTransferProvider: config.deposits.bankTransferProvider, bankTransferPolicy,
  });
  const refunds = createRefunds({ db, log, operations, providers }, {
    provider: config.deposits.refundProvider, reservationProvider: config.deposits.reservationProvider,
    fee: BigInt(config.deposits.refundFee.amount), feePayer: config.deposits.refundFee.payer, settlePollMs: config.deposits.refundSettlePollMs,
  });
  const expiryInquiry = createExpiryInquiry({ db, log, clock, providers, inboxWriter }, {
    provider: config.deposits.reservationProvider, afterMs: config.deposits.expiryInquiryAfterMs,
  });
  const onOutcome = (subscription: string, outcome: string, seconds?: number) => {
    metrics.deliveries.inc({ subscription, outcome });
    if (seconds !== undefined) metrics.deliveryDuration.observe({ subscription }, seconds);
    if (seconds !== undefined) health.record('delivery', subscription, seconds * 1000, outcome !== 'delivered');
  };
  const handlerDeliveries = new HandlerDeliveryProcessor({ pool: db.pool, log, onOutcome }, consumers);
  const httpDeliveries = new HttpDeliveryProcessor({ pool: db.pool, log, onOutcome }, { dispatcher: egress, leaseMs: config.worker.leaseMs, userAgent: 'seigo/0.1' });
  // Points consume card.* like any subscriber (config subscription `points`); off unless configured.
  const points = config.points;
  if (points) consumers.register('points', pointsConsumer({ config: points, now: () => clock.now() }));
  const natsLink = new NatsLink(config.nats, log);
  const natsDeliveries = new NatsDeliveryProcessor({ pool: db.pool, log, onOutcome }, { link: natsLink });
  const batch = config.worker.batchSize;
  const janitorMs = config.operations.janitorIntervalMs ?? 10_000;
  const caseActions = new CaseActions().register(retryOperationAction(operations)).register(redriveDeliveryAction()).register(replayInboxAction());
  const reconcileDeps = reconcileDepsOf({ db, providers, inboxWriter, operations, log, bankTransferPolicy });
  caseActions.register(reimportRowAction(reconcileDeps));
  const processId = `${process.pid}:${uuidv7().slice(-12)}`;
  const flushHealth = async () => {
    await health.flush(db.pool);
    await reportBreakers(db.pool, processId, resilience.breakers());
  };
  const flushTimer = setInterval(() => {
    flushHealth().catch((e: Error) => log.warn({ err: e }, 'could not write health figures; kept for the next flush'));
  }, config.health.flushIntervalMs);
  flushTimer.unref();

  return {
    config, db, log, clock, metrics, providers, handlers, consumers, operations, sagas, iap, deposits, refunds, expiryInquiry, bankTransferPolicy, partnerDb, ticketKeys, inboxWriter, inbox, handlerDeliveries, httpDeliveries, natsDeliveries, egress,
    caseActions, health, flushHealth,
    createWorker(role = 'worker', extra = {}) {
      const loops: WorkLoop[] = [
        { name: 'inbox', channel: 'inbox', concurrency: 2, runOnce: () => inbox.runOnce(batch) },
        { name: 'deliveries.handler', channel: 'deliveries', concurrency: 2, runOnce: () => handlerDeliveries.runOnce(batch) },
        { name: 'deliveries.http', channel: 'deliveries', concurrency: 1, runOnce: () => httpDeliveries.runOnce(Math.min(batch, config.worker.concurrency * 8)) },
        // Due sagas, and sagas whose worker died mid-step (their lease ended): claimed with SKIP LOCKED.
        { name: 'sagas', channel: 'sagas', concurrency: 1, runOnce: () => sagas.runOnce(Math.min(batch, 20)) },
        { name: 'deliveries.nats', channel: 'deliveries', concurrency: 4, runOnce: () => natsDeliveries.runOnce(batch) },
        // Ticket sales, refunds and redemptions to the ledger; redemption conflicts to cases.
        { name: 'tickets.settle', channel: null, concurrency: 1, runOnce: () => settleTickets(db.pool) },
        ...(extra.loops ?? []),
      ];
      const periodic: PeriodicJob[] = [
        { name: 'operations.janitor', intervalMs: janitorMs, run: async () => { await operations.janitorOnce(); } },
        { name: 'ledger.expire-holds', intervalMs: 60_000, run: async () => { await expireHolds(db.pool, clock.now()); } },
        // A charge the janitor declared unknown (its process died mid-call): the deposit follows it.
        { name: 'deposits.sync', intervalMs: janitorMs, run: async () => { await deposits.syncOnce(); } },
        // Bank-transfer deposits past their deadline: hold released, deposit.expired (no provider tells us).
        { name: 'deposits.bank-transfer-expiry', intervalMs: janitorMs, run: async () => { await deposits.expireBankTransferDeposits(); } },
        // Escrow waiting for a refund, payouts recorded but not sent, and sent payouts the provider may have settled.
        { name: 'deposits.refunds', intervalMs: 10_000, run: async () => { await refunds.runOnce(); } },
        { name: 'deposits.expiry-inquiry', intervalMs: 5 * 60_000, run: async () => { await expiryInquiry.runOnce(); } },
        ...(config.reconcile.schedule ? reconcileJobs(reconcileDeps, config.reconcile) : []),
        // Outcomes the modules above only report (unknown past deadline, dead deliveries, suspense, shortfall) become cases.
        { name: 'cases.detect', intervalMs: 60_000, run: async () => { await detectCases(db.pool, { log }); } },
        // The daily digest, when a Slack webhook is configured: one message per interval, across workers.
        ...(config.digest.slackWebhookUrl
          ? [
            { name: 'digest.daily', intervalMs: config.digest.intervalMs, run: async () => { await publishDigest(db.pool, clock.now(), config.digest.intervalMs); } },
            // Per partner: its master changes applied, by rule, waiting (with age), rejected, failed pulls.
            { name: 'masterdata.digest', intervalMs: config.digest.intervalMs, run: async () => { await publishMasterDigests(db.pool, clock.now(), config.digest.intervalMs); } },
          ]
          : []),
        // Partners' master pulls, each on its source's own schedule (a cheap query when none is due).
        ...masterdataJobs({ pool: db.pool, dispatcher: egress }, { now: () => clock.now(), log }),
        // Alert rules to Slack, when a webhook is configured: one evaluation per interval, across workers.
        ...(config.alerts.slackWebhookUrl
          ? [{ name: 'alerts.evaluate', intervalMs: config.alerts.intervalMs, run: async () => { await evaluateAlerts(db.pool, config.alerts, clock.now()); } }]
          : []),
        ...(points ? [{ name: 'points.expire-lots', intervalMs: 60 * 60_000, run: async () => { await expireLots(db.pool, clock.now()); } }] : []),
        ...(extra.periodic ?? []),
      ];
      return new WorkerRuntime({ pool: db.pool, databaseUrl: db.url, log, role, pollIntervalMs: config.worker.pollIntervalMs, loops, periodic });
    },
    async close() {
      clearInterval(flushTimer);
      await flushHealth().catch((e: Error) => log.warn({ err: e }, 'could not write the last health figures'));
      await egress.close().catch(() => undefined);
      await natsLink.close();
      await intakeDb.close();
      await partnerDb.close();
    },
  };
}
