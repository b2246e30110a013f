// Idempotency keys for API clients' POST requests, with Stripe's semantics: the first request with
// an `Idempotency-Key` runs and its response (status and body) is stored; a retry with the same key
// and the same method, path and body gets that response again with `Idempotent-Replayed: true`; the
// same key with other parameters is a 422 `idempotency_mismatch`; the same key while the first
// request still runs is a 409 `idempotency_conflict` (retry later). The header is optional.
//
// Design: hooks, not a handler wrapper, so route code stays as it is. Every POST route with
// `config.apiClient === true` takes part (opt out with `config.idempotent: false`):
//   - preHandler claims the key in one statement, `INSERT … ON CONFLICT DO UPDATE … WHERE <owner
//     dead and same parameters>`: PostgreSQL's unique index lets exactly one of any number of
//     concurrent requests insert (or take over a dead owner's key); the others read the row and get
//     a replay, a 409 or a 422. It runs after the body is parsed and before the handler.
//   - onError notes a thrown error; onSend stores the serialized payload (exact bytes, so a replay
//     is byte-identical) before it is written, so a client that saw a response finds it stored.
//   - Who holds a key is a live process, not a lease: each process holds a session-level advisory
//     lock on a connection of its own (`IdempotencyOwner`) and names that owner on its keys. A key
//     is taken over only when its owner's lock is not held (migration 0025), and a session lock
//     dies with its connection, so a killed process's keys are free at once, and a live request
//     keeps its key however long it runs. Keys written before that migration keep their time lease.
//
// What is stored: every response the handler completes, 4xx and 5xx included (Stripe replays a
// saved 500 too), except when the handler throws an error that says nothing durable is worth
// replaying, and then the key is released (row deleted) so a retry runs again:
//   - an unexpected exception (our 500), any 5xx, or an error marked retryable: the same request may
//     well succeed next time. This is safe because what our handlers do underneath is idempotent on
//     its own: a deposit is recorded under the client's `client_key`, its provider call as an
//     operation under its own idempotency key (one row per key, and the provider gets that key too),
//     and its ledger posting under its own (a unique index), so a rerun after a half-done attempt
//     finds the earlier work and answers from it rather than doing it twice;
//   - a 400 `invalid_request` (the input was refused before anything ran): as at Stripe, the client
//     may fix the body and send it again with the same key.
// Keys are kept at least 24 hours; `idempotencyPruneJob` deletes older ones.
import { createHash, randomInt, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import pg from 'pg';
import type { Engine } from '../engine/engine.ts';
import type { Queryable } from '../kernel/db.ts';
import { BadRequestError, SeigoError, problem } from '../kernel/errors.ts';
import type { Logger } from '../kernel/logger.ts';
import type { PeriodicJob } from '../worker/runtime.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** API client POST routes honour `Idempotency-Key` unless this is false. */
    idempotent?: boolean | undefined;
  }
}

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const REPLAYED_HEADER = 'idempotent-replayed';
/** How long keys are kept at least (Stripe: "at least 24 hours old"). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 3_600_000;
/** key1 of every owner's advisory lock (ASCII "seig"); migration 0025's idempotency_owner_alive looks for it. */
export const IDEMPOTENCY_OWNER_LOCK_CLASS = 0x73656967;
const MAX_BODY_DEPTH = 256;
/** 1–255 printable ASCII characters. */
const KEY_RE = /^[\x20-\x7E]{1,255}$/;

export interface IdempotencyOptions {
  /** The pool that holds the keys (default the engine's); the partner API passes its own. */
  pool?: pg.Pool;
  /**
   * Which requests take part, and under which client name their keys are kept; default: API client
   * POST routes, keyed by the client's name. The partner API keys by `partner:<id>`.
   */
  clientOf?: (req: FastifyRequest) => string | undefined;
}

/** One request that holds a key while its handler runs. */
interface Attempt {
  client: string;
  key: string;
  lockId: string;
  error?: Error;
}

interface KeyRow {
  method: string;
  path: string;
  request_hash: string;
  status: 'in_progress' | 'done';
  locked: boolean;
  response_status: number | null;
  response_type: string | null;
  response_body: string | null;
}

// A new key names its owner; locked_until = infinity keeps a version that still reads the time
// lease from taking it over. The ON CONFLICT branch takes over an in-progress key with the same
// parameters whose owner is dead (or, for a key from before owners, whose lease has run out).
const CLAIM = `
  INSERT INTO idempotency_keys (client, key, method, path, request_hash, locked_by, locked_until, owner)
  VALUES ($1, $2, $3, $4, $5, $6, 'infinity', $7)
  ON CONFLICT (client, key) DO UPDATE
    SET locked_by = EXCLUDED.locked_by, locked_until = EXCLUDED.locked_until, owner = EXCLUDED.owner
    WHERE idempotency_keys.status = 'in_progress'
      AND idempotency_keys.method = EXCLUDED.method AND idempotency_keys.path = EXCLUDED.path
      AND idempotency_keys.request_hash = EXCLUDED.request_hash
      AND CASE WHEN idempotency_keys.owner IS NULL THEN idempotency_keys.locked_until < now()
               ELSE NOT idempotency_owner_alive(idempotency_keys.owner) END
  RETURNING locked_by`;
const SELECT_KEY = `
  SELECT method, path, request_hash, status, response_status, response_type, response_body,
    CASE WHEN status = 'done' THEN false WHEN owner IS NULL THEN locked_until > now() ELSE idempotency_owner_alive(owner) END AS locked
  FROM idempotency_keys WHERE client = $1 AND key = $2`;
const COMPLETE = `
  UPDATE idempotency_keys
  SET status = 'done', response_status = $4, response_type = $5, response_body = $6, completed_at = now(),
    locked_by = NULL, locked_until = NULL, owner = NULL
  WHERE client = $1 AND key = $2 AND locked_by = $3 AND status = 'in_progress'`;
const RELEASE = `DELETE FROM idempotency_keys WHERE client = $1 AND key = $2 AND locked_by = $3 AND status = 'in_progress'`;
const PRUNE = `
  DELETE FROM idempotency_keys WHERE (client, key) IN (
    SELECT client, key FROM idempotency_keys
    WHERE created_at < now() - $1 * interval '1 millisecond'
      AND (status = 'done' OR (owner IS NULL AND locked_until < now()) OR (owner IS NOT NULL AND NOT idempotency_owner_alive(owner)))
    LIMIT $2)`;
const TRY_OWNER_LOCK = 'SELECT pg_try_advisory_lock($1, $2) AS locked';

/** JSON with object keys sorted at every level, so key order and whitespace do not change the hash. */
function canonicalJson(value: unknown, depth = 0): string {
  if (depth > MAX_BODY_DEPTH) throw new BadRequestError('invalid_request', `the body nests deeper than ${MAX_BODY_DEPTH} levels`);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, depth + 1)}`).join(',')}}`;
  }
  if (Buffer.isBuffer(value)) return JSON.stringify(value.toString('base64'));
  return JSON.stringify(value ?? null);
}

/** SHA-256 (hex) of the canonical JSON of a parsed request body. */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

type Claim =
  | { kind: 'claimed'; lockId: string }
  | { kind: 'replay'; status: number; type: string | null; body: string }
  | { kind: 'mismatch'; detail: string }
  | { kind: 'in_progress' };

interface ClaimInput { client: string; key: string; method: string; path: string; hash: string }

/**
 * This process's hold on the keys it claims: a session-level advisory lock
 * (IDEMPOTENCY_OWNER_LOCK_CLASS, id) on a connection of its own, held for the life of the process.
 * If that connection is lost, the keys it named are free to be taken over (their attempts cannot
 * store over a successor: completing checks `locked_by`), and the next claim opens a new owner.
 */
export class IdempotencyOwner {
  private current: Promise<{ id: number; client: pg.Client }> | undefined;
  private closed = false;

  constructor(private readonly url: string, private readonly log: Pick<Logger, 'warn'>) {}

  /** The owner id to name on a key claimed now (opens the connection and takes the lock on first use). */
  async id(): Promise<number> {
    if (this.closed) throw new SeigoError('shutting_down', 'the server is shutting down', 503, true);
    const current = this.current ?? this.open();
    try {
      return (await current).id;
    } catch (e) {
      if (this.current === current) this.current = undefined;
      throw e;
    }
  }

  private open(): Promise<{ id: number; client: pg.Client }> {
    // No idle_session_timeout: the connection idles on purpose, for as long as the process lives.
    const client = new pg.Client({ connectionString: this.url, application_name: 'seigo idempotency owner', keepAlive: true, options: '-c idle_session_timeout=0' });
    const opened = (async () => {
      await client.connect();
      for (let tries = 0; tries < 10; tries++) {
        const id = randomInt(1, 2 ** 31 - 1);
        const r = await client.query<{ locked: boolean }>(TRY_OWNER_LOCK, [IDEMPOTENCY_OWNER_LOCK_CLASS, id]);
        if (r.rows[0]?.locked) return { id, client };
      }
      throw new Error('could not take an idempotency owner lock: ten random owner ids were all held');
    })();
    const lost = (why: string) => {
      if (this.current !== opened) return;
      this.current = undefined;
      if (!this.closed) this.log.warn({ why }, 'lost the idempotency owner connection: keys claimed on it may be taken over; the next request opens a new owner');
    };
    client.on('error', (e) => lost(e.message));
    client.on('end', () => lost('connection ended'));
    opened.catch(() => client.end().catch(() => undefined));
    this.current = opened;
    return opened;
  }

  /** Releases the lock (by closing its connection): keys still in progress become free. */
  async close(): Promise<void> {
    this.closed = true;
    const current = await this.current?.catch(() => undefined);
    this.current = undefined;
    await current?.client.end().catch(() => undefined);
  }
}

async function claim(pool: pg.Pool, owner: IdempotencyOwner, r: ClaimInput): Promise<Claim> {
  // A row can vanish between the two statements (its attempt threw and released it): then try again.
  for (let tries = 0; tries < 5; tries++) {
    const lockId = randomUUID();
    const ownerId = await owner.id();
    const won = await pool.query({ name: 'idempotency_claim', text: CLAIM, values: [r.client, r.key, r.method, r.path, r.hash, lockId, ownerId] });
    if (won.rowCount === 1) return { kind: 'claimed', lockId };
    const { rows: [row] } = await pool.query<KeyRow>({ name: 'idempotency_select', text: SELECT_KEY, values: [r.client, r.key] });
    if (!row) continue;
    if (row.method !== r.method || row.path !== r.path) {
      return { kind: 'mismatch', detail: `this Idempotency-Key was first used for ${row.method} ${row.path}, not ${r.method} ${r.path}; use a new key for a new request` };
    }
    if (row.request_hash !== r.hash) {
      return { kind: 'mismatch', detail: `this Idempotency-Key was first used with a different request body; use a new key for a new request` };
    }
    if (row.status === 'done') return { kind: 'replay', status: row.response_status!, type: row.response_type, body: row.response_body! };
    if (row.locked) return { kind: 'in_progress' };
    // Its owner died after our claim looked: claim again.
  }
  return { kind: 'in_progress' };
}

/** Whether a thrown error releases the key (see the header comment) rather than being stored for replay. */
function releasesKey(e: Error): boolean {
  const status = e instanceof SeigoError ? e.status
    : 'statusCode' in e && typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 500) return true;
  if (e instanceof SeigoError && (e.retryable || e.code === 'invalid_request')) return true;
  return false;
}

function apiClientOf(req: FastifyRequest): string | undefined {
  const config = req.routeOptions.config;
  return req.method === 'POST' && config.apiClient === true && config.idempotent !== false ? req.apiClient?.name : undefined;
}

/**
 * Adds the hooks that give API client POST routes Stripe-style idempotency keys. Call it on the
 * instance that holds those routes (or an ancestor), after `apiClientAuth` and before the routes
 * are registered. Idempotent routes answer JSON (a string or Buffer payload); a streamed answer is
 * not stored and releases its key.
 */
export function idempotency(app: FastifyInstance, engine: Pick<Engine, 'db' | 'log'>, opts: IdempotencyOptions = {}): void {
  const pool = opts.pool ?? engine.db.pool;
  const clientOf = opts.clientOf ?? apiClientOf;
  const owner = new IdempotencyOwner(engine.db.url, engine.log);
  app.addHook('onClose', async () => { await owner.close(); });
  const attempts = new WeakMap<FastifyRequest, Attempt>();
  const json = 'application/problem+json';

  const settle = async (a: Attempt, text: string, values: unknown[]) => {
    const r = await pool.query({ name: `idempotency_${text === COMPLETE ? 'complete' : 'release'}`, text, values: [a.client, a.key, a.lockId, ...values] });
    // Our owner connection was lost and another attempt took the key over: its answer is the one kept.
    if (r.rowCount === 0) engine.log.warn({ client: a.client }, 'idempotency key was taken over while its first attempt ran');
  };

  app.addHook('preHandler', async (req, reply) => {
    const client = clientOf(req);
    if (client === undefined) return;
    const raw = req.headers[IDEMPOTENCY_KEY_HEADER];
    if (raw === undefined) return;
    if (typeof raw !== 'string' || !KEY_RE.test(raw)) {
      return reply.code(400).type(json).send(problem(400, 'invalid_idempotency_key', 'Idempotency-Key must be one header of 1 to 255 printable ASCII characters'));
    }
    const input = { client, key: raw, method: req.method, path: req.url, hash: requestHash(req.body) };
    const c = await claim(pool, owner, input);
    switch (c.kind) {
      case 'claimed':
        attempts.set(req, { client: input.client, key: input.key, lockId: c.lockId });
        return;
      case 'replay':
        if (c.type) reply.type(c.type);
        return reply.code(c.status).header(REPLAYED_HEADER, 'true').send(c.body);
      case 'mismatch':
        return reply.code(422).type(json).send(problem(422, 'idempotency_mismatch', c.detail));
      case 'in_progress':
        return reply.code(409).header('retry-after', '1').type(json)
          .send(problem(409, 'idempotency_conflict', 'a request with this Idempotency-Key is still being processed; retry later with the same key', { retryable: true }));
    }
  });

  app.addHook('onError', async (req, _reply, error) => {
    const a = attempts.get(req);
    if (a) a.error = error;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const a = attempts.get(req);
    if (!a) return payload;
    attempts.delete(req);
    const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload == null ? '' : null;
    try {
      if (body === null || (a.error && releasesKey(a.error))) {
        await settle(a, RELEASE, []);
      } else {
        const type = reply.getHeader('content-type');
        await settle(a, COMPLETE, [reply.statusCode, typeof type === 'string' ? type : null, body]);
      }
    } catch (e) {
      // The answer is still true: send it. The key stays in progress while this process lives, and a
      // retry after that runs the handler again, which is safe for the reason in the header comment.
      engine.log.error({ err: (e as Error).message, client: a.client }, 'could not store an idempotent response');
    }
    return payload;
  });

  // A request whose answer never reached onSend must not hold its key for the life of the process.
  app.addHook('onResponse', async (req) => {
    const a = attempts.get(req);
    if (!a) return;
    attempts.delete(req);
    await settle(a, RELEASE, []).catch((e: Error) => engine.log.warn({ err: e.message, client: a.client }, 'could not release an idempotency key'));
  });
}

/** Deletes keys created more than `olderThanMs` ago (never a key whose attempt still holds its lock); returns how many. */
export async function pruneIdempotencyKeys(pool: Queryable, olderThanMs = IDEMPOTENCY_KEY_TTL_MS, batch = 5_000): Promise<number> {
  let total = 0;
  for (;;) {
    const r = await pool.query({ name: 'idempotency_prune', text: PRUNE, values: [olderThanMs, batch] });
    total += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < batch) return total;
  }
}

/** The periodic job that prunes keys older than 24 hours; add it to `createWorker`'s periodic jobs. */
export function idempotencyPruneJob(pool: Queryable, intervalMs = 3_600_000): PeriodicJob {
  return { name: 'api.prune-idempotency-keys', intervalMs, run: async () => { await pruneIdempotencyKeys(pool); } };
}
