// Configuration: environment variables plus an optional JSON file (SEIGO_CONFIG, default
// ./seigo.config.json), validated once at start with messages that name the bad key.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseDuration } from './backoff.ts';
import { expandEnvReferences } from './config-env.ts';

/** Longest retry delay anyone may configure: beyond it, timestamps and timers overflow. */
export const MAX_DURATION_MS = 30 * 86_400_000;
/** Longest timeout for one outbound HTTP call (the delivery lease is derived from it). */
export const MAX_TIMEOUT_MS = 10 * 60_000;

/** A duration ("5s", "30min", "2h", or milliseconds), at most `max` milliseconds. */
export function durationSchema(max = MAX_DURATION_MS) {
  return z.union([z.number().int().nonnegative(), z.string().max(40)]).transform((v, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
    if (!Number.isSafeInteger(ms) || ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${max} ms` });
      return z.NEVER;
    }
    return ms;
  });
}
const duration = durationSchema();
const timeout = durationSchema(MAX_TIMEOUT_MS);

/**
 * A secret (key, signing secret, token): no provider's secret starts or ends with whitespace, so a
 * pasted value that does is a slip, refused with the same message for every secret field before
 * any format check (a key that "almost" matched would fail every signature later, silently).
 */
export function secretSchema() {
  return z.string()
    .refine((v) => v === v.trim(), { message: 'has leading or trailing whitespace (a copy-paste slip?): remove it', abort: true })
    .refine((v) => v.length > 0, { message: 'must not be empty', abort: true });
}
const whsecSecret = secretSchema().regex(/^whsec_[A-Za-z0-9+/=]+$/, 'must be a Standard Webhooks secret: "whsec_" followed by base64');

export const providerSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('standard-webhooks'),
    secrets: z.array(whsecSecret).min(1, 'needs at least one secret'),
    toleranceSeconds: z.number().int().positive().default(300),
  }).strict(),
  z.object({
    /** A card network's events (src/providers/card-network), signed with Standard Webhooks. */
    kind: z.literal('card-network'),
    secrets: z.array(whsecSecret).min(1, 'needs at least one secret'),
    toleranceSeconds: z.number().int().positive().default(300),
  }).strict(),
  z.object({
    kind: z.literal('stripe'),
    secretKey: secretSchema(),
    webhookSecrets: z.array(secretSchema().regex(/^whsec_\S+$/, 'must be a Stripe webhook signing secret ("whsec_…")')).min(1, 'needs at least one webhook secret'),
    /** Default https://api.stripe.com; point it at the simulator in development. */
    apiBase: z.string().url().optional(),
    toleranceSeconds: z.number().int().positive().default(300),
    apiVersion: z.string().optional(),
    searchLagSeconds: z.number().int().nonnegative().optional(),
  }).strict(),
  z.object({
    kind: z.literal('komoju'),
    secretKey: secretSchema(),
    webhookSecrets: z.array(secretSchema()).min(1, 'needs at least one webhook secret token'),
    /** Default https://komoju.com; point it at the simulator in development. */
    apiBase: z.string().url().optional(),
  }).strict(),
  z.object({
    /** The legacy billing system (src/providers/billing): member ids only; outbound calls, no notifications. */
    kind: z.literal('billing'),
    apiBase: z.string().url(),
    apiKey: secretSchema(),
  }).strict(),
  z.object({
    /** The App Store (src/providers/app-store): StoreKit 2 transactions and Server Notifications V2, verified with Apple's library. */
    kind: z.literal('app-store'),
    bundleId: z.string().min(1),
    environment: z.enum(['Production', 'Sandbox']).default('Production'),
    /** Required by Apple's library in Production. */
    appAppleId: z.number().int().positive().optional(),
    /** Trusted roots (PEM or base64 DER); default Apple Root CA G3. The simulator's test root in development. */
    rootCertificates: z.array(z.string().min(1)).min(1).optional(),
    /** OCSP revocation and expiry against now, as Apple advises; default true. */
    onlineChecks: z.boolean().default(true),
  }).strict().refine((p) => p.environment !== 'Production' || p.appAppleId !== undefined, { message: 'appAppleId is required in Production', path: ['appAppleId'] }),
  z.object({
    /** Google Play (src/providers/google-play): purchases.subscriptionsv2.get, and RTDN through a Pub/Sub push subscription. */
    kind: z.literal('google-play'),
    packageName: z.string().min(1),
    /** An OAuth 2.0 access token of the service account with access to the app. */
    accessToken: secretSchema(),
    /** Default https://androidpublisher.googleapis.com; the simulator in development. */
    apiBase: z.string().url().optional(),
    /** The Pub/Sub push subscription's OIDC token, checked on every RTDN push; without it RTDN pushes are refused. */
    pubsub: z.object({
      jwksUrl: z.string().url().default('https://www.googleapis.com/oauth2/v3/certs'),
      issuer: z.array(z.string().min(1)).min(1).default(['https://accounts.google.com', 'accounts.google.com']),
      audience: z.string().min(1),
      serviceAccountEmail: z.string().email(),
    }).strict().optional(),
  }).strict(),
]);

const filterSchema = z.record(z.string(), z.unknown()).default({});

export const subscriptionTargetSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('http'),
    url: z.string().url(),
    secret: whsecSecret.optional(),
    timeoutMs: timeout.default(10_000),
    /** "envelope": Standard Webhooks' {type, timestamp, data}; "payload": the message's payload as it is (a Slack message, say). */
    body: z.enum(['envelope', 'payload']).default('envelope'),
  }).strict(),
  z.object({ type: z.literal('handler'), handler: z.string().min(1) }).strict(),
  z.object({
    type: z.literal('nats'),
    /** The NATS subject published to (no wildcards); a JetStream stream must capture it. */
    subject: z.string().max(255).regex(/^[^\s*>.]+(\.[^\s*>.]+)*$/, 'a NATS subject: dot-separated tokens, no spaces or wildcards'),
    /** The stream expected to store it: a publish another stream (or none) would take is refused, and retried. */
    stream: z.string().max(255).regex(/^[^\s*>.\/\\]+$/, 'a JetStream stream name: no spaces, ".", "*", ">", "/" or "\\"'),
    /** How long to wait for the stream's acknowledgement. */
    timeoutMs: timeout.default(5_000),
  }).strict(),
]);

export const subscriptionSchema = z.object({
  /** Unique; deliveries, the DLQ and redrive refer to it. */
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'lowercase letters, digits, ".", "_" and "-"'),
  /** The message topic it receives (`deposit.succeeded`, `card.cleared`, …). */
  topic: z.string().min(1),
  /** Attributes a message must have, each equal to the given value. */
  filter: filterSchema,
  target: subscriptionTargetSchema,
  /** Delays between delivery attempts before a delivery is dead (default: the outbox's schedule). */
  retrySchedule: z.array(duration).max(50).optional(),
}).strict();

const endpointSchema = z.object({
  timeoutMs: timeout.default(10_000),
  maxAttempts: z.number().int().min(1).max(10).default(3),
  concurrency: z.number().int().min(1).max(1000).default(16),
  breaker: z.object({
    consecutiveFailures: z.number().int().min(1).default(5),
    halfOpenAfterMs: duration.default(30_000),
  }).strict().default({ consecutiveFailures: 5, halfOpenAfterMs: 30_000 }),
}).strict();

const ALERT_DEFAULTS = {
  intervalMs: 60_000, repeatIntervalMs: 4 * 3_600_000, windowMs: 15 * 60_000,
  errorRate: { enabled: true, threshold: 0.05, minRequests: 20 },
  p95Latency: { enabled: true, thresholdMs: 2_500, minRequests: 20 },
  dlqGrowth: { enabled: true, threshold: 1 },
  unknownOperations: { enabled: true, olderThanMs: 30 * 60_000 },
  reconciliationBreaks: { enabled: true, threshold: 1 },
  casesOverdue: { enabled: true, olderThanMs: 24 * 3_600_000 },
  breakerOpen: { enabled: true },
} as const;
const rule = <T extends z.ZodRawShape>(shape: T) => z.object({ enabled: z.boolean().default(true), ...shape }).strict();
const alertsSchema = z.object({
  slackWebhookUrl: z.string().url().optional(),
  /** How often the rules are evaluated (once across all workers). */
  intervalMs: duration.default(ALERT_DEFAULTS.intervalMs),
  /** A rule still firing is posted again after this long. */
  repeatIntervalMs: duration.default(ALERT_DEFAULTS.repeatIntervalMs),
  /** The window error rates, p95 latency and DLQ growth are measured over. */
  windowMs: duration.default(ALERT_DEFAULTS.windowMs),
  /** Per HTTP route, webhook provider, outbound provider and delivery subscription: errors / requests. */
  errorRate: rule({ threshold: z.number().gt(0).max(1).default(0.05), minRequests: z.number().int().min(1).default(20) })
    .default(ALERT_DEFAULTS.errorRate),
  p95Latency: rule({ thresholdMs: z.number().int().positive().default(2_500), minRequests: z.number().int().min(1).default(20) })
    .default(ALERT_DEFAULTS.p95Latency),
  /** Deliveries that went dead within the window, per subscription. */
  dlqGrowth: rule({ threshold: z.number().int().min(1).default(1) }).default(ALERT_DEFAULTS.dlqGrowth),
  /** Operations still unknown this long after they were sent, per provider. */
  unknownOperations: rule({ olderThanMs: duration.default(30 * 60_000) }).default(ALERT_DEFAULTS.unknownOperations),
  /** Open reconciliation breaks, per scope. */
  reconciliationBreaks: rule({ threshold: z.number().int().min(1).default(1) }).default(ALERT_DEFAULTS.reconciliationBreaks),
  /** Cases open or investigating for longer than this, per kind. */
  casesOverdue: rule({ olderThanMs: duration.default(24 * 3_600_000) }).default(ALERT_DEFAULTS.casesOverdue),
  breakerOpen: rule({}).default(ALERT_DEFAULTS.breakerOpen),
}).strict().default(ALERT_DEFAULTS);

export const configSchema = z.object({
  /** Where the HTTP API listens (SEIGO_PORT); 0 picks a free port. */
  port: z.number().int().min(0).max(65535).default(8787),
  /** The address the HTTP API binds (SEIGO_HOST); loopback unless you put it behind a proxy. */
  host: z.string().default('127.0.0.1'),
  /** Your PostgreSQL (DATABASE_URL); without it, `seigo start` runs the embedded server under `dataDir`. */
  databaseUrl: z.string().optional(),
  /** The embedded PostgreSQL's cluster, local keys and runtime files (SEIGO_DATA_DIR). */
  dataDir: z.string().default('.seigo'),
  /** Log level (SEIGO_LOG_LEVEL); `info` logs one line per request, case, reconciliation run and failed operation. */
  log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).strict().default({ level: 'info' }),
  /** Inbound notifications: stored before they are acknowledged, processed by the workers. */
  intake: z.object({
    /** Largest request body accepted; larger ones get 413 and are not stored. */
    maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** Most notifications stored in one group commit. */
    batchMaxRows: z.number().int().min(1).max(5000).default(500),
    /** Batches committing at once; more requests wait and join the next batch (group commit). */
    commitsInFlight: z.number().int().min(1).max(16).default(2),
    /** Delays between attempts to process a stored notification whose processing failed; after the last it is dead (replayable). */
    retrySchedule: z.array(duration).default([1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]),
  }).strict().default({ maxBodyBytes: 1024 * 1024, batchMaxRows: 500, commitsInFlight: 2, retrySchedule: [1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000] }),
  /** Providers by name: the name is the webhook route (`POST /webhooks/<name>`) and how operations and reconciliation refer to it. */
  providers: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'provider names are lowercase letters, digits, "_" and "-"'), providerSchema).default({}),
  /** Subscriptions declared in the file (the admin API adds more): a topic, a filter on attributes, a target. */
  subscriptions: z.array(subscriptionSchema).default([]),
  /** Tokens for /admin/v1 and the console: a viewer reads, an operator also acts. */
  adminTokens: z.array(z.object({
    name: z.string().min(1),
    token: secretSchema().min(16, 'admin tokens must be at least 16 characters'),
    role: z.enum(['viewer', 'operator']),
  }).strict()).default([]),
  /** Partners that call the client API with `Authorization: Bearer <key>`; the name scopes their idempotency keys. */
  apiClients: z.array(z.object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'lowercase letters, digits, ".", "_" and "-"'),
    key: secretSchema().min(24, 'API client keys must be at least 24 characters').max(512)
      .regex(/^[\x21-\x7E]+$/, 'API client keys are printable ASCII without spaces (they travel as a bearer token)'),
    scopes: z.array(z.string().min(1)).optional(),
  }).strict())
    .refine((cs) => new Set(cs.map((c) => c.name)).size === cs.length, 'API client names must be unique')
    .refine((cs) => new Set(cs.map((c) => c.key)).size === cs.length, 'API client keys must be unique')
    .default([]),
  outbound: z.object({
    /** Hosts or CIDR ranges that outbound HTTP may reach even though they are private or loopback. */
    allow: z.array(z.string()).default([]),
  }).strict().default({ allow: [] }),
  /** Outbound endpoints by provider name: timeout, attempts, concurrency and circuit breaker of the calls to it. */
  endpoints: z.record(z.string(), endpointSchema).default({}),
  /** The NATS servers that subscriptions with a `nats` target publish to (JetStream); unused, and never connected, without them. */
  nats: z.object({
    servers: z.array(z.string().min(1)).min(1, 'needs at least one server URL, e.g. "nats://127.0.0.1:4222"'),
    /** The connection's name, as the server's monitoring shows it. */
    name: z.string().min(1).default('seigo'),
    user: z.string().min(1).optional(),
    pass: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    /** How long one connection attempt may take. */
    connectTimeoutMs: timeout.default(5_000),
  }).strict().optional(),
  worker: z.object({
    /** How often an idle worker looks for work when no notification woke it. */
    pollIntervalMs: duration.default(1_000),
    /** How long a claimed item (delivery, periodic job) stays a worker's before another may take it over. */
    leaseMs: duration.default(30_000),
    /** Items claimed at once. */
    batchSize: z.number().int().min(1).max(5000).default(200),
    /** Items processed at once per worker process. */
    concurrency: z.number().int().min(1).max(256).default(8),
  }).strict().default({ pollIntervalMs: 1_000, leaseMs: 30_000, batchSize: 200, concurrency: 8 }),
  /** Deposits for the wallet's backend: which provider charges cards, and the wallet limit without a per-user override (yen). */
  deposits: z.object({
    cardProvider: z.string().default('stripe'),
    defaultLimit: z.number().int().positive().default(1_000_000),
    /** konbini / Pay-easy: which paid notice credits the wallet, the preliminary (速報) or the final (確報). */
    creditOn: z.enum(['preliminary', 'final']).default('preliminary'),
    /** The provider that makes konbini / Pay-easy reservations. */
    reservationProvider: z.string().default('komoju'),
    /**
     * Refunds of escrowed money (the part of an unrefusable deposit over the limit): the provider that
     * pays them out, the fee it charges per payout (yen), and who bears it: the platform (default: the
     * user gets the whole excess back) or the user (deducted from the payout).
     */
    refundProvider: z.string().default('komoju'),
    refundFee: z.object({
      amount: z.number().int().nonnegative().max(100_000).default(300),
      payer: z.enum(['platform', 'user']).default('platform'),
    }).strict().default({ amount: 300, payer: 'platform' }),
    /** A payout the provider took and has not reported settled is asked about after this long (KOMOJU settles within a business day or two). */
    refundSettlePollMs: duration.default(5 * 60_000),
    /** konbini / Pay-easy reservations this long past their deadline without an expiry notice are asked about at the provider. */
    expiryInquiryAfterMs: duration.default(30 * 60_000),
    /** How long a bank-transfer deposit (POST /v1/deposits) waits for its transfer before it expires and its hold is released. */
    bankTransferExpiryMs: duration.default(7 * 24 * 3_600_000),
    /** The `standard-webhooks` provider whose `bank_transfer.*` events announce incoming transfers (bank-transfer-webhook.ts); none when unset. */
    bankTransferProvider: z.string().min(1).optional(),
    /** The wallet backend's callback for user notices: every `deposit.*` message, signed (Standard Webhooks), retried. */
    callback: z.object({
      url: z.string().url(),
      secret: whsecSecret.optional(),
      timeoutMs: timeout.default(10_000),
      /** Delays between attempts before a notice is dead (default: the outbox's schedule). */
      retrySchedule: z.array(duration).max(50).optional(),
    }).strict().optional(),
  }).strict().default({
    cardProvider: 'stripe', defaultLimit: 1_000_000, creditOn: 'preliminary', reservationProvider: 'komoju',
    refundProvider: 'komoju', refundFee: { amount: 300, payer: 'platform' }, refundSettlePollMs: 5 * 60_000, expiryInquiryAfterMs: 30 * 60_000,
    bankTransferExpiryMs: 7 * 24 * 3_600_000,
  }),
  /** Points (src/points) from card.* events: a rule per merchant category, lots that expire. Off unless given. */
  points: z.object({
    /** The first rule naming a purchase's merchant category applies; otherwise the default rate. */
    rules: z.array(z.object({
      name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'lowercase letters, digits, ".", "_" and "-"'),
      merchantCategories: z.array(z.string().regex(/^\d{4}$/, 'a four-digit merchant category code')).min(1),
      /** Points per ¥10,000 (100 = 1%). */
      rateBasisPoints: z.number().int().min(0).max(10_000),
    }).strict()).default([]),
    defaultRateBasisPoints: z.number().int().min(0).max(10_000).default(100),
    expiryMonths: z.number().int().min(1).max(120).default(12),
    expiringSoonDays: z.number().int().min(1).max(365).default(30),
  }).strict().optional(),
  /** `npm start` runs the Stripe and KOMOJU simulators for providers the configuration does not declare. */
  simulators: z.object({ enabled: z.boolean().default(true) }).strict().default({ enabled: true }),
  operations: z.object({
    /** An operation whose outcome is still unknown this long after it was sent opens a case. */
    unknownDeadlineMs: duration.default(24 * 3_600_000),
    /** Delays between inquiries about an operation whose outcome is unknown (a timeout, a 5xx). */
    inquirySchedule: z.array(duration).default([30_000, 120_000, 600_000, 1_800_000, 3_600_000, 6 * 3_600_000]),
    /** How often the janitor (and the deposits' sync with it) runs; default 10 s. */
    janitorIntervalMs: duration.optional(),
    /** A `pending` operation older than this had its process die before sending: the janitor sends it; default 30 s. */
    stalePendingMs: duration.optional(),
  }).strict().default({ unknownDeadlineMs: 24 * 3_600_000, inquirySchedule: [30_000, 120_000, 600_000, 1_800_000, 3_600_000, 6 * 3_600_000] }),
  /** The daily digest (src/digest): posted to a Slack incoming webhook through the outbox. */
  digest: z.object({
    slackWebhookUrl: z.string().url().optional(),
    intervalMs: duration.default(24 * 3_600_000),
  }).strict().default({ intervalMs: 24 * 3_600_000 }),
  /** Health figures (src/health): how often each process adds its counts to the database. */
  health: z.object({ flushIntervalMs: duration.default(10_000) }).strict().default({ flushIntervalMs: 10_000 }),
  /**
   * Alert rules (src/alerts), posted to a Slack incoming webhook through the outbox: one message when a rule
   * fires, one when it resolves, again every repeatIntervalMs while it keeps firing. Off without the webhook.
   */
  alerts: alertsSchema,
  /** The partner API (/partner/v1): its own bounded pool under the seigo_partner role, and the default rate limit of a new key. */
  partners: z.object({
    pool: z.object({
      max: z.number().int().min(1).max(200).default(8),
      acquireTimeoutMs: duration.default(5_000),
    }).strict().default({ max: 8, acquireTimeoutMs: 5_000 }),
    rateLimit: z.object({
      requests: z.number().int().min(1).max(1_000_000).default(600),
      windowSeconds: z.number().int().min(1).max(86_400).default(60),
    }).strict().default({ requests: 600, windowSeconds: 60 }),
  }).strict().default({ pool: { max: 8, acquireTimeoutMs: 5_000 }, rateLimit: { requests: 600, windowSeconds: 60 } }),
  /**
   * In-app purchases (src/iap): products sold in the apps, and the providers (declared above) for the
   * billing system and the stores. Off unless given.
   */
  iap: z.object({
    products: z.array(z.string().min(1)).min(1),
    billingProvider: z.string().min(1).default('billing'),
    appStoreProvider: z.string().min(1).default('app_store'),
    googlePlayProvider: z.string().min(1).default('google_play'),
  }).strict().optional(),
  /** Reconciliation: scheduled runs for every provider with a history, and for HTTP deliveries to internal services. */
  reconcile: z.object({
    /** Run reconciliation periodically (every `intervalMs`); `seigo reconcile` runs it on demand either way. */
    schedule: z.boolean().default(true),
    intervalMs: duration.default(24 * 3_600_000),
    /** A delivery to an internal service still not acknowledged this long after it was created is a break. */
    deliveryDeadlineMs: duration.default(24 * 3_600_000),
  }).strict().default({ schedule: true, intervalMs: 24 * 3_600_000, deliveryDeadlineMs: 24 * 3_600_000 }),
}).strict().superRefine((c, ctx) => {
  // A misspelt billing provider would leave every purchase saga calling nobody.
  if (c.iap && c.providers[c.iap.billingProvider]?.kind !== 'billing') {
    ctx.addIssue({
      code: z.ZodIssueCode.custom, path: ['iap', 'billingProvider'],
      message: `names no declared provider of kind billing: declare providers.${c.iap.billingProvider} = { "kind": "billing", "apiBase": ..., "apiKey": ... }`,
    });
  }
  // A misspelt bank-transfer provider would match no event and book nothing, silently.
  const name = c.deposits.bankTransferProvider;
  if (name !== undefined && c.providers[name]?.kind !== 'standard-webhooks') {
    ctx.addIssue({
      code: z.ZodIssueCode.custom, path: ['deposits', 'bankTransferProvider'],
      message: `names no declared provider of kind standard-webhooks: declare providers.${name} = { "kind": "standard-webhooks", "secrets": [...] }`,
    });
  }
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ProviderConfig = z.output<typeof providerSchema>;
export type SubscriptionConfig = z.output<typeof subscriptionSchema>;

/** The subscription that deposits.callback becomes (see parseConfig). */
export const DEPOSITS_CALLBACK_SUBSCRIPTION = 'deposits.callback';
/** The subscription that digest.slackWebhookUrl becomes, and the topic it takes (src/digest). */
export const DIGEST_SUBSCRIPTION = 'digest.slack';
export const DIGEST_TOPIC = 'digest.daily';
/** The same webhook takes the partners' master-data digests (src/masterdata/digest.ts), one message per partner. */
export const MASTERDATA_DIGEST_SUBSCRIPTION = 'digest.masterdata.slack';
export const MASTERDATA_DIGEST_TOPIC = 'digest.masterdata';
/** The subscription that `points` becomes: every card.* message to the in-process consumer `points`. */
export const POINTS_SUBSCRIPTION = 'points';
/** The subscription that alerts.slackWebhookUrl becomes, and the topic alert messages take (src/alerts). */
export const ALERTS_SUBSCRIPTION = 'alerts.slack';
export const ALERTS_TOPIC = 'alerts.slack';

function formatIssues(error: z.ZodError, source: string): string {
  return error.issues
    .map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('\n')
    .replace(/^/, `invalid configuration in ${source}:\n`);
}

/** Validates a config object (file contents merged with env); throws ConfigError naming each bad key. */
export function parseConfig(input: unknown, source = 'configuration'): Config {
  const r = configSchema.safeParse(input);
  if (!r.success) throw new ConfigError(formatIssues(r.error, source));
  // deposits.callback is a config subscription like any other: applied, paused and resumed with them.
  const cb = r.data.deposits.callback;
  if (cb && !r.data.subscriptions.some((s) => s.name === DEPOSITS_CALLBACK_SUBSCRIPTION)) {
    r.data.subscriptions.push({
      name: DEPOSITS_CALLBACK_SUBSCRIPTION, topic: 'deposit.*', filter: {},
      target: { type: 'http', url: cb.url, timeoutMs: cb.timeoutMs, body: 'envelope', ...(cb.secret !== undefined ? { secret: cb.secret } : {}) },
      ...(cb.retrySchedule !== undefined ? { retrySchedule: cb.retrySchedule } : {}),
    });
  }
  // So is the digest's Slack webhook: Slack takes its message as the whole body.
  const slack = r.data.digest.slackWebhookUrl;
  if (slack && !r.data.subscriptions.some((s) => s.name === DIGEST_SUBSCRIPTION)) {
    r.data.subscriptions.push({ name: DIGEST_SUBSCRIPTION, topic: DIGEST_TOPIC, filter: {}, target: { type: 'http', url: slack, timeoutMs: 10_000, body: 'payload' } });
  }
  if (slack && !r.data.subscriptions.some((s) => s.name === MASTERDATA_DIGEST_SUBSCRIPTION)) {
    r.data.subscriptions.push({
      name: MASTERDATA_DIGEST_SUBSCRIPTION, topic: MASTERDATA_DIGEST_TOPIC, filter: {}, target: { type: 'http', url: slack, timeoutMs: 10_000, body: 'payload' },
    });
  }
  const alerts = r.data.alerts.slackWebhookUrl;
  if (alerts && !r.data.subscriptions.some((s) => s.name === ALERTS_SUBSCRIPTION)) {
    r.data.subscriptions.push({ name: ALERTS_SUBSCRIPTION, topic: ALERTS_TOPIC, filter: {}, target: { type: 'http', url: alerts, timeoutMs: 10_000, body: 'payload' } });
  }
  if (r.data.points && !r.data.subscriptions.some((s) => s.name === POINTS_SUBSCRIPTION)) {
    r.data.subscriptions.push({ name: POINTS_SUBSCRIPTION, topic: 'card.*', filter: {}, target: { type: 'handler', handler: 'points' } });
  }
  return r.data;
}

/** Loads SEIGO_CONFIG (or ./seigo.config.json if present) and applies environment overrides. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const explicit = env.SEIGO_CONFIG;
  const path = resolve(cwd, explicit ?? 'seigo.config.json');
  let file: Record<string, unknown> = {};
  if (existsSync(path)) {
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`invalid configuration in ${path}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new ConfigError(`invalid configuration in ${path}: the file must hold a JSON object`);
    }
    file = expandEnvReferences(file, env, path) as Record<string, unknown>;
  } else if (explicit) {
    throw new ConfigError(`SEIGO_CONFIG names ${path}, which does not exist`);
  }
  const merged: Record<string, unknown> = { ...file };
  if (env.SEIGO_PORT !== undefined) {
    const port = Number(env.SEIGO_PORT);
    if (!Number.isInteger(port)) throw new ConfigError(`SEIGO_PORT must be a port number, got ${JSON.stringify(env.SEIGO_PORT)}`);
    merged.port = port;
  }
  if (env.SEIGO_HOST) merged.host = env.SEIGO_HOST;
  if (env.DATABASE_URL) merged.databaseUrl = env.DATABASE_URL;
  if (env.SEIGO_DATA_DIR) merged.dataDir = env.SEIGO_DATA_DIR;
  if (env.SEIGO_NATS_SERVERS) {
    const servers = env.SEIGO_NATS_SERVERS.split(',').map((x) => x.trim()).filter(Boolean);
    merged.nats = { ...(merged.nats as object | undefined), servers };
  }
  if (env.SEIGO_LOG_LEVEL) merged.log = { ...(merged.log as object | undefined), level: env.SEIGO_LOG_LEVEL };
  if (env.SEIGO_ADMIN_TOKEN) {
    const tokens = Array.isArray(merged.adminTokens) ? [...(merged.adminTokens as unknown[])] : [];
    tokens.push({ name: 'env', token: env.SEIGO_ADMIN_TOKEN, role: 'operator' });
    merged.adminTokens = tokens;
  }
  const cfg = parseConfig(merged, existsSync(path) ? `${path} (with environment overrides)` : 'environment');
  cfg.dataDir = resolve(cwd, cfg.dataDir);
  return cfg;
}
