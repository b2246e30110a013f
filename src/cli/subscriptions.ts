// `seigo subscriptions`: manage subscriptions from a shell as the admin API does (list, show, update, delete,
// rotate-secret, test) and read a delivery's attempt log; the same functions, the same snake_case JSON.
import { InvalidArgumentError, type Command } from 'commander';
import { refusalError, subscriptionView } from '../api/subscriptions.ts';
import { parseDuration } from '../kernel/backoff.ts';
import { BadRequestError, NotFoundError } from '../kernel/errors.ts';
import { isUuid } from '../kernel/ids.ts';
import {
  deleteSubscription, getSubscription, listDeliveryAttempts, listSubscriptions, rotateSubscriptionSecret, sendTestMessage,
  updateSubscription, type SubscriptionChange, type SubscriptionStatus,
} from '../outbox/index.ts';
import { openRuntime, type Runtime } from './bootstrap.ts';
import { runtimeOptions } from './options.ts';

const jsonObject = (v: string): Record<string, unknown> => {
  try {
    const o: unknown = JSON.parse(v);
    if (typeof o === 'object' && o !== null && !Array.isArray(o)) return o as Record<string, unknown>;
  } catch { /* refused below */ }
  throw new InvalidArgumentError('a JSON object');
};
const duration = (v: string): number => {
  if (v.trim() === '0') return 0;
  try {
    return parseDuration(v);
  } catch {
    throw new InvalidArgumentError('a duration such as 30s, 15min, 24h or 0');
  }
};
const status = (v: string): SubscriptionStatus => {
  if (v !== 'active' && v !== 'paused' && v !== 'disabled') throw new InvalidArgumentError('active, paused or disabled');
  return v;
};

async function withRuntime(fn: (rt: Runtime) => Promise<unknown>): Promise<void> {
  const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
  try {
    const out = await fn(rt);
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await rt.close();
  }
}

export function subscriptionsCommand(program: Command): void {
  const subs = program.command('subscriptions').description('Subscriptions: list, show, update, delete, rotate-secret, test, and a delivery\'s attempts');

  runtimeOptions(subs.command('list')).description('Every subscription, as JSON')
    .action(() => withRuntime(async (rt) => {
      const list = await listSubscriptions(rt.db.pool);
      return { object: 'list', data: list.map(subscriptionView), has_more: false, next_cursor: null };
    }));

  runtimeOptions(subs.command('show')).description('One subscription, as JSON').argument('<name>', 'its name or id')
    .action((name: string) => withRuntime(async (rt) => {
      const s = await getSubscription(rt.db.pool, name);
      if (!s) throw new NotFoundError('subscription_not_found', `no subscription ${name}`);
      return subscriptionView(s);
    }));

  runtimeOptions(subs.command('update')).description('Change what is given; the rest (and the secret) stays')
    .argument('<name>', 'its name or id')
    .option('--topic <topic>', 'an exact topic, prefix.* or *')
    .option('--filter <json>', 'attribute filter (a JSON object, matched by containment)', jsonObject)
    .option('--url <url>', 'a new URL for an HTTP target')
    .option('--status <status>', 'active, paused or disabled', status)
    .option('--reason <text>', 'why (with --status)')
    .action((name: string, o: { topic?: string; filter?: Record<string, unknown>; url?: string; status?: SubscriptionStatus; reason?: string }) =>
      withRuntime(async (rt) => {
        const change: SubscriptionChange = { topic: o.topic, filter: o.filter, status: o.status, reason: o.reason };
        if (o.url) {
          const s = await getSubscription(rt.db.pool, name);
          if (!s) throw refusalError(name, { code: 'subscription_not_found' });
          if (s.target.type !== 'http') throw new BadRequestError('not_http_target', `--url: ${name} has no HTTP target`);
          change.target = { type: 'http', url: o.url, timeoutMs: s.target.timeoutMs, body: s.target.body };
        }
        const r = await updateSubscription(rt.db.pool, name, change);
        if (!r.ok) throw refusalError(name, r.error);
        return subscriptionView(r.value);
      }));

  runtimeOptions(subs.command('delete')).description('Delete a subscription with its deliveries and their attempt logs')
    .argument('<name>', 'its name or id')
    .action((name: string) => withRuntime(async (rt) => {
      const r = await deleteSubscription(rt.db.pool, name);
      if (!r.ok) throw refusalError(name, r.error);
      return { id: r.value.id, name, deleted: true, deliveries_deleted: r.value.deliveries };
    }));

  runtimeOptions(subs.command('rotate-secret')).description('A new signing secret (printed once); the old one signs beside it for --overlap')
    .argument('<name>', 'its name or id')
    .option('--overlap <duration>', 'how long the old secret keeps signing (0: stops now)', duration, 86_400_000)
    .action((name: string, o: { overlap: number }) => withRuntime(async (rt) => {
      const r = await rotateSubscriptionSecret(rt.db.pool, name, o.overlap);
      if (!r.ok) throw refusalError(name, r.error);
      return { name, secret: r.value.secret, previous_secret_expires_at: r.value.previousSecretExpiresAt?.toISOString() ?? null };
    }));

  runtimeOptions(subs.command('test')).description('Send a test message (topic seigo.test) to this subscription alone; a running worker delivers it')
    .argument('<name>', 'its name or id')
    .option('--payload <json>', 'the message payload (a JSON object)', jsonObject)
    .action((name: string, o: { payload?: Record<string, unknown> }) => withRuntime(async (rt) => {
      const r = await sendTestMessage(rt.db.pool, name, o.payload);
      if (!r.ok) throw refusalError(name, r.error);
      return { message_id: r.value.messageId, delivery_id: r.value.deliveryId, topic: r.value.topic };
    }));

  runtimeOptions(subs.command('attempts')).description('The attempt log of an HTTP delivery, oldest first')
    .argument('<delivery-id>', 'the delivery (GET /admin/v1/deliveries lists them)')
    .action((id: string) => withRuntime(async (rt) => {
      if (!isUuid(id)) throw new BadRequestError('invalid_request', `not a delivery id: ${id}`);
      const rows = await listDeliveryAttempts(rt.db.pool, id, { limit: 1000 });
      if (!rows) throw new NotFoundError('not_found', `no delivery ${id}`);
      return rows.map((a) => ({
        attempt: a.attempt, started_at: a.startedAt, latency_ms: a.latencyMs, status_code: a.statusCode, outcome: a.outcome,
        error: a.error, response_excerpt: a.responseExcerpt,
      }));
    }));
}
