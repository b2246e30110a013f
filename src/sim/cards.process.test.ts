// `seigo sim cards` as a proof: a small run with every outage (worker killed, points store failing, NATS
// restarted) ends with all five checks at 0; then each check is shown to fire on a fault injected into
// that run's world: a double award, a negative balance, an unbalanced ledger, a message stored twice on
// the stream, a message dropped from it, and an accepted event that never became a message.
import { headers } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { ensureAccounts, post } from '../ledger/index.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { natsAvailable } from '../../test/helpers/nats.ts';
import { CARD_SUBSCRIPTIONS, CARDS_STREAM, runCardsOn, SIM_RULES, startCardsWorld, streamMessageIds, type CardsWorld } from './cards.ts';
import { cardViolations, computeCardFigures, type CardFigures, type SentEvent } from './cards-figures.ts';

describe.skipIf(!natsAvailable())('seigo sim cards', () => {
  let tdb: TestDatabase;
  let w: CardsWorld;
  let events: SentEvent[] = [];
  let sent: SentEvent[] = [];
  const progress = (m: string) => { if (process.env.SEIGO_TEST_VERBOSE) console.error(m); };
  const figures = async (accepted = sent): Promise<CardFigures> => computeCardFigures({
    pool: w.pool, generated: events, accepted, rules: SIM_RULES, streamMessageIds: await streamMessageIds(w), subscriptions: CARD_SUBSCRIPTIONS,
  });

  beforeAll(async () => {
    tdb = await createTestDatabase({ max: 1 });
    w = await startCardsWorld({ seed: 11, databaseUrl: tdb.url, progress });
  });
  afterAll(async () => {
    await w?.stop(false);
    await tdb?.drop();
  });

  it('a run with duplicates, reordering, unknown types and every outage ends with points, ledger and stream agreeing with the events', async () => {
    const run = await runCardsOn(w, { seed: 11, count: 40, faultRate: 0.2, perSecond: 30, progress });
    events = run.events;
    sent = run.sent;
    const r = run.result;
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ ok: true, quiesced: true, points_mismatches: 0, negative_balances: 0, ledger_sum: 0, nats_duplicates: 0, lost: 0 });
    expect(r.outages).toHaveLength(3);
    expect(r.points_expected).toBeGreaterThan(0);
    expect(r.points_awarded).toBe(r.points_expected);
    // Every card event once on the stream; duplicates the network sent are not messages twice.
    expect(r.nats_published).toBe(new Set(sent.filter((e) => !e.type.endsWith('.advice')).map((e) => e.id)).size);
    expect(r.sent).toBeGreaterThan(r.events);
  });

  it('points_mismatches fires on a double award, negative_balances on points taken below zero', async () => {
    const user = String((events.find((e) => e.type === 'clearing')!.data as { user_id: string }).user_id);
    const [points, , issued] = await ensureAccounts(w.pool, [
      { kind: 'points', owner: user, currency: 'PTS' }, { kind: 'points_provisional', owner: user, currency: 'PTS' }, { kind: 'points_issued', owner: '', currency: 'PTS' },
    ]);
    const move = (amount: bigint, key: string) => withTx(w.pool, (tx) => post(tx, {
      idempotencyKey: key, kind: 'points_award', metadata: {}, entries: [{ accountId: points!.id, amount }, { accountId: issued!.id, amount: -amount }],
    }));
    // The same award posted a second time under another key: balanced, but more than the events give.
    await move(30n, 'injected-double-award');
    const doubled = await figures();
    expect(doubled).toMatchObject({ points_mismatches: 1, negative_balances: 0, ledger_sum: 0 });
    expect(cardViolations(doubled)).toEqual(['points_mismatches = 1']);
    const balance = await w.pool.query<{ n: string }>(`SELECT sum(posted)::text AS n FROM ledger_balances WHERE account_id = $1`, [points!.id]);
    await move(-(BigInt(balance.rows[0]!.n) + 5n), 'injected-overdraw');
    expect(await figures()).toMatchObject({ points_mismatches: 1, negative_balances: 1, ledger_sum: 0 });
  });

  it('ledger_sum fires on a balance changed outside a balanced posting', async () => {
    // One row: the issuing account's balance is spread over shards.
    await w.pool.query(`UPDATE ledger_balances SET posted = posted + 7 WHERE ctid = (SELECT b.ctid FROM ledger_balances b
      JOIN ledger_accounts a ON a.id = b.account_id WHERE a.kind = 'points_issued' AND a.currency = 'PTS' LIMIT 1)`);
    const f = await figures();
    expect(f.ledger_sum).toBe(7);
    expect(cardViolations(f)).toContain('ledger_sum = 7');
  });

  it('nats_duplicates fires on a message stored twice, lost on one missing from the stream or never published', async () => {
    const ids = await streamMessageIds(w);
    // A publisher without Nats-Msg-Id dedupe: the same seigo message stored again.
    const h = headers();
    h.set('Seigo-Message-Id', ids[0]!);
    await w.js.publish('cards.events', '{}', { headers: h });
    const f1 = await figures();
    expect(f1).toMatchObject({ nats_duplicates: 1, nats_published: ids.length + 1, lost: 0 });
    // A message dropped from the stream (its only copy).
    await w.jsm.streams.deleteMessage(CARDS_STREAM, ids.length, true);
    const f2 = await figures();
    expect(f2.lost).toBe(1);
    // An event seigo acknowledged whose card.* message is missing.
    const ghost = { ...events[0]!, id: 'evt_never_published' };
    const f3 = await figures([...sent, ghost]);
    expect(f3.lost).toBe(2);
    expect(cardViolations(f3)).toEqual(expect.arrayContaining(['nats_duplicates = 1', 'lost = 2']));
  });
});
