import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';

let t: TestEngine;
beforeAll(async () => { t = await startTestEngine(); });
afterAll(async () => { await t.close(); });

describe('POST /webhooks/:provider', () => {
  it('stores a verified notification and acknowledges it with the inbox id', async () => {
    const r = await sendWebhook(t.url, { id: 'msg_store_1', data: { id: 'pay_1', amount: 500 } });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ id: expect.any(String), duplicate: false });
    const row = await t.tdb.db.pool.query('SELECT provider, event_id, status, body, headers FROM inbox WHERE id = $1', [r.json.id]);
    expect(row.rows[0]).toMatchObject({ provider: 'acme', event_id: 'msg_store_1', status: 'pending' });
    expect(JSON.parse(row.rows[0].body.toString())).toMatchObject({ data: { id: 'pay_1', amount: 500 } });
    expect(row.rows[0].headers['webhook-id']).toBe('msg_store_1');
  });

  it('answers a repeat with the same id and duplicate: true', async () => {
    const a = await sendWebhook(t.url, { id: 'msg_dup_1' });
    const b = await sendWebhook(t.url, { id: 'msg_dup_1' });
    expect(b.status).toBe(200);
    expect(b.json).toEqual({ id: a.json.id, duplicate: true });
  });

  it('gives 50 concurrent identical requests one row, one id, and exactly one non-duplicate answer', async () => {
    const body = JSON.stringify({ type: 'payment.succeeded', data: { id: 'pay_storm' } });
    const rs = await Promise.all(Array.from({ length: 50 }, () => sendWebhook(t.url, { id: 'msg_storm', body })));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(new Set(rs.map((r) => r.json.id)).size).toBe(1);
    expect(rs.filter((r) => r.json.duplicate === false)).toHaveLength(1);
    const n = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM inbox WHERE event_id = 'msg_storm'`);
    expect(n.rows[0].n).toBe(1);
  });

  it('refuses bad, stale or missing signatures with 401 invalid_signature and stores nothing', async () => {
    const wrongKey = await sendWebhook(t.url, { id: 'msg_bad_1', secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    const stale = await sendWebhook(t.url, { id: 'msg_bad_2', now: new Date(Date.now() - 6 * 60_000) });
    const missing = await request(`${t.url}/webhooks/acme`, { method: 'POST', body: '{"type":"x","data":{}}', headers: { 'content-type': 'application/json' } });
    for (const r of [wrongKey, stale]) {
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toContain('application/problem+json');
      expect(r.json).toMatchObject({ status: 401, code: 'invalid_signature' });
    }
    expect(missing.statusCode).toBe(401);
    await missing.body.dump();
    const n = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM inbox WHERE event_id LIKE 'msg_bad_%'`);
    expect(n.rows[0].n).toBe(0);
  });

  it('answers 404 for an unknown provider, 413 over the body limit, 400 for a signed body it cannot parse', async () => {
    const unknown = await sendWebhook(t.url, { id: 'm1', provider: 'nobody' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.code).toBe('unknown_provider');
    const big = await sendWebhook(t.url, { id: 'm2', body: JSON.stringify({ type: 'x', data: { pad: 'x'.repeat(1024 * 1024 + 10) } }) });
    expect(big.status).toBe(413);
    expect(big.json.code).toBe('payload_too_large');
    const bad = await sendWebhook(t.url, { id: 'm3', body: 'not json' });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('unparseable_payload');
  });

  it('accepts a 512 KB payload intact', async () => {
    const pad = 'あ'.repeat(170_000);
    const r = await sendWebhook(t.url, { id: 'msg_large', data: { id: 'pay_large', pad } });
    expect(r.status).toBe(200);
    const row = await t.tdb.db.pool.query('SELECT body FROM inbox WHERE id = $1', [r.json.id]);
    expect(JSON.parse(row.rows[0].body.toString()).data.pad).toBe(pad);
  });
});

describe('processing', () => {
  it('normalizes, runs handlers and publishes in one transaction, exactly once, and replays idempotently', async () => {
    const seen: string[] = [];
    t.engine.handlers.on('order.paid', async ({ tx }, event) => {
      seen.push(String(event.entityId));
      await tx.query('CREATE TABLE IF NOT EXISTS test_effects (entity_id text PRIMARY KEY)');
      await tx.query('INSERT INTO test_effects (entity_id) VALUES ($1) ON CONFLICT DO NOTHING', [event.entityId]);
    });
    const r = await sendWebhook(t.url, { id: 'msg_proc_1', type: 'order.paid', data: { id: 'ord_1', object: 'order' } });
    await t.engine.inbox.runOnce(100);
    const row = await t.tdb.db.pool.query('SELECT status, event_type, entity_type, entity_id, attempts FROM inbox WHERE id = $1', [r.json.id]);
    expect(row.rows[0]).toEqual({ status: 'processed', event_type: 'order.paid', entity_type: 'order', entity_id: 'ord_1', attempts: 1 });
    const msgs = await t.tdb.db.pool.query(`SELECT topic, payload FROM outbox_messages WHERE entity_id = 'ord_1'`);
    expect(msgs.rows).toHaveLength(1);
    expect(msgs.rows[0].payload).toMatchObject({ provider: 'acme', type: 'order.paid', data: { id: 'ord_1' } });

    // Replay: processed again, the handler's effect stays single and the message is not published twice.
    const replay = await request(`${t.url}/admin/v1/inbox/${String(r.json.id)}/replay`, { method: 'POST', headers: { authorization: 'Bearer test-operator-token-0123456789' } });
    expect(replay.statusCode).toBe(202);
    await replay.body.dump();
    await t.engine.inbox.runOnce(100);
    expect(seen).toEqual(['ord_1', 'ord_1']);
    const again = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM outbox_messages WHERE entity_id = 'ord_1'`);
    expect(again.rows[0].n).toBe(1);
    const effects = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM test_effects`);
    expect(effects.rows[0].n).toBe(1);
  });

  it('retries a failing handler with backoff, then stops as failed with the cause; one bad row does not hold back others', async () => {
    t.engine.handlers.on('order.poison', async () => { throw new Error('ledger is closed'); });
    const bad = await sendWebhook(t.url, { id: 'msg_poison', type: 'order.poison', data: { id: 'ord_p' } });
    const good = await sendWebhook(t.url, { id: 'msg_fine', type: 'order.fine', data: { id: 'ord_f' } });
    await t.engine.inbox.runOnce(100);
    const rows = await t.tdb.db.pool.query('SELECT id, status, attempts, last_error, next_attempt_at > now() AS later FROM inbox WHERE id = ANY($1)', [[bad.json.id, good.json.id]]);
    const byId = Object.fromEntries(rows.rows.map((r) => [r.id, r]));
    expect(byId[String(good.json.id)]).toMatchObject({ status: 'processed' });
    expect(byId[String(bad.json.id)]).toMatchObject({ status: 'pending', attempts: 1, last_error: 'ledger is closed', later: true });
    // Exhaust the schedule: each attempt made due at once.
    for (let i = 0; i < 10; i++) {
      await t.tdb.db.pool.query(`UPDATE inbox SET next_attempt_at = now() WHERE id = $1 AND status = 'pending'`, [bad.json.id]);
      await t.engine.inbox.runOnce(100);
    }
    const end = await t.tdb.db.pool.query('SELECT status, attempts, last_error FROM inbox WHERE id = $1', [bad.json.id]);
    expect(end.rows[0]).toMatchObject({ status: 'failed', attempts: t.engine.config.intake.retrySchedule.length + 1, last_error: 'ledger is closed' });
    const listed = await request(`${t.url}/admin/v1/inbox?status=failed`, { headers: { authorization: 'Bearer test-viewer-token-0123456789ab' } });
    const body = await listed.body.json() as { data: { id: string; last_error: string }[] };
    expect(body.data.find((d) => d.id === bad.json.id)?.last_error).toBe('ledger is closed');
  });

  it('a worker picks up new notifications on its own (LISTEN/NOTIFY)', async () => {
    await t.startWorker();
    const r = await sendWebhook(t.url, { id: 'msg_worker_1', type: 'order.shipped', data: { id: 'ord_w' } });
    const row = await eventually(async () => {
      const q = await t.tdb.db.pool.query(`SELECT status FROM inbox WHERE id = $1 AND status = 'processed'`, [r.json.id]);
      return q.rows[0];
    });
    expect(row.status).toBe('processed');
  });
});
