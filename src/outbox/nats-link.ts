// The NATS connection that JetStream targets publish through: opened on first use (so seigo runs
// without NATS until a subscription needs it), kept, reconnected by the client, and the reasons a
// publish fails turned into causes an operator can act on.
import { jetstream, JetStreamApiError, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../kernel/config.ts';
import type { Logger } from '../kernel/logger.ts';

export type NatsConfig = NonNullable<Config['nats']>;

export interface JetStreamPublish {
  subject: string;
  stream: string;
  /** The stream's dedupe key (`Nats-Msg-Id`): a retried publish within the duplicate window is not stored twice. */
  msgId: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** A publish the stream acknowledged (`duplicate`: it had it already), or why not. */
export type PublishOutcome = { ok: true; ack: PubAck } | { ok: false; cause: string };

/** Why a publish failed, in words that say what to fix; no credentials (only server URLs). */
export function natsCause(e: unknown, p: Pick<JetStreamPublish, 'subject' | 'stream'>): string {
  const err = e instanceof Error ? e : new Error(String(e));
  // No responders on the subject: nothing listens, i.e. no stream captures it (or JetStream is off).
  // The client calls that JetStreamNotEnabled, a class its public surface does not export.
  if (err.name === 'JetStreamNotEnabled') {
    return `no JetStream stream captures subject "${p.subject}" (expected stream "${p.stream}"), or JetStream is not enabled`;
  }
  if (err instanceof JetStreamApiError) return `JetStream refused the publish to "${p.subject}" (stream "${p.stream}"): ${err.message}`;
  const name = err.name === 'Error' ? '' : `${err.name}: `;
  return `${name}${err.message}`.replace(/\s+/g, ' ').slice(0, 1000);
}

export class NatsLink {
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private connecting: Promise<JetStreamClient> | null = null;
  /** Set while the client has lost the server and is reconnecting. */
  private lost: string | null = null;

  constructor(private readonly config: NatsConfig | undefined, private readonly log: Logger) {}

  /** Publishes each message with a JetStream acknowledgement, all in flight at once; never throws. */
  async publishAll(items: readonly JetStreamPublish[]): Promise<PublishOutcome[]> {
    if (items.length === 0) return [];
    let js: JetStreamClient;
    try {
      js = await this.jetstream();
    } catch (e) {
      const cause = this.config ? `cannot connect to NATS (${this.config.servers.join(', ')}): ${natsCause(e, items[0]!)}` : natsCause(e, items[0]!);
      return items.map(() => ({ ok: false, cause }));
    }
    // While the client reconnects, a publish would only wait for its timeout: fail at once, with the reason.
    if (this.lost !== null) {
      const cause = `NATS server unreachable, reconnecting (${this.lost})`;
      return items.map(() => ({ ok: false, cause }));
    }
    return Promise.all(items.map((p) => publishOne(js, p)));
  }

  private async jetstream(): Promise<JetStreamClient> {
    if (this.js && this.nc && !this.nc.isClosed()) return this.js;
    if (!this.config) throw new Error('a subscription has a nats target but no NATS servers are configured (nats.servers)');
    this.connecting ??= this.open(this.config).finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private async open(cfg: NatsConfig): Promise<JetStreamClient> {
    const nc = await connect({
      servers: cfg.servers, name: cfg.name, timeout: cfg.connectTimeoutMs,
      reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 1_000,
      ...(cfg.user !== undefined ? { user: cfg.user } : {}), ...(cfg.pass !== undefined ? { pass: cfg.pass } : {}),
      ...(cfg.token !== undefined ? { token: cfg.token } : {}),
    });
    this.nc = nc;
    this.js = jetstream(nc);
    this.lost = null;
    void this.watch(nc);
    this.log.info({ servers: cfg.servers }, 'connected to NATS');
    return this.js;
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (this.nc !== nc) return;
      if (s.type === 'disconnect') {
        this.lost = `disconnected from ${s.server}`;
        this.log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
      } else if (s.type === 'reconnect') {
        this.lost = null;
        this.log.info({ server: s.server }, 'NATS connection restored');
      }
    }
  }

  async close(): Promise<void> {
    // A connection still being opened is closed once open, not left behind.
    await this.connecting?.catch(() => undefined);
    const nc = this.nc;
    this.nc = null;
    this.js = null;
    await nc?.close().catch(() => undefined);
  }
}

async function publishOne(js: JetStreamClient, p: JetStreamPublish): Promise<PublishOutcome> {
  const h = headers();
  for (const [k, v] of Object.entries(p.headers)) h.set(k, v);
  try {
    const ack = await js.publish(p.subject, p.body, { msgID: p.msgId, expect: { streamName: p.stream }, headers: h, timeout: p.timeoutMs });
    return { ok: true, ack };
  } catch (e) {
    return { ok: false, cause: natsCause(e, p) };
  }
}
