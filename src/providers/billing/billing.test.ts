// The billing-system simulator over real HTTP through its adapter: start, renew, cancel and status
// by member id; a request id seen again answers as the first time; refusals are failures; a 500
// did nothing (asking finds no request); a timeout after success did it (asking finds it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { OperationRequest } from '../types.ts';
import { BillingSimulator, billingAdapter } from './index.ts';

const sim = new BillingSimulator({ apiKey: 'bk_test_1', seed: 7 });
let url = '';
let adapter: ReturnType<typeof billingAdapter>;
let n = 0;
const op = (kind: string, req: Record<string, unknown>): OperationRequest => ({ id: `op${++n}`, kind, idempotencyKey: `req-${n}`, request: req });
const call = (o: OperationRequest, ms = 5_000) => adapter.client!(o, AbortSignal.timeout(ms));
const ask = (o: OperationRequest) => adapter.inquire!(o, AbortSignal.timeout(5_000));
const later = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

beforeAll(async () => {
  ({ url } = await sim.start());
  adapter = billingAdapter({ name: 'billing', apiBase: url, apiKey: 'bk_test_1' });
});
afterAll(() => sim.stop());

describe('billing simulator', () => {
  it('starts, renews and cancels a member\'s subscription; status shows the billing system\'s record', async () => {
    const start = op('billing.start', { member_id: 'm-1', product_id: 'gold', expires_at: later(30), reference: 'sub_1' });
    expect(await call(start)).toMatchObject({ status: 'succeeded', response: { member_id: 'm-1', status: 'active', product_id: 'gold', reference: 'sub_1' } });
    expect(await call(op('billing.start', { member_id: 'm-1', product_id: 'gold', expires_at: later(30) })))
      .toMatchObject({ status: 'failed', code: 'already_active' });
    const end = later(60);
    expect(await call(op('billing.renew', { member_id: 'm-1', expires_at: end }))).toMatchObject({ status: 'succeeded', response: { expires_at: end, renewals: 1 } });
    expect(await call(op('billing.cancel', { member_id: 'm-1' }))).toMatchObject({ status: 'succeeded', response: { status: 'cancelled' } });
    expect(await call(op('billing.renew', { member_id: 'm-1', expires_at: later(90) }))).toMatchObject({ status: 'failed', code: 'not_active' });
    const res = await request(`${url}/v1/members/m-1/subscription`, { headers: { authorization: 'Bearer bk_test_1' } });
    expect([res.statusCode, await res.body.json()]).toEqual([200, expect.objectContaining({ member_id: 'm-1', status: 'cancelled', renewals: 1 })]);
    expect(await call(op('billing.cancel', { member_id: 'nobody' }))).toMatchObject({ status: 'failed', code: 'not_active' });
  });

  it('answers a request id seen again with its first answer, doing nothing twice', async () => {
    const start = op('billing.start', { member_id: 'm-2', product_id: 'gold', expires_at: later(30) });
    const first = await call(start);
    const before = sim.counters.processed;
    expect(await call(start)).toEqual(first);
    expect(sim.counters.processed).toBe(before);
    expect(await ask(start)).toEqual(first);
  });

  it('refuses a wrong API key', async () => {
    const bad = billingAdapter({ name: 'billing', apiBase: url, apiKey: 'wrong' });
    expect(await bad.client!(op('billing.start', { member_id: 'm-3', product_id: 'gold', expires_at: later(1) }), AbortSignal.timeout(5_000)))
      .toMatchObject({ status: 'failed', code: 'unauthorized' });
  });

  it('a 500 did nothing: the call throws (unknown to the caller) and asking finds no such request', async () => {
    sim.setFaults({ error500: 1 });
    const start = op('billing.start', { member_id: 'm-4', product_id: 'gold', expires_at: later(30) });
    await expect(call(start)).rejects.toThrow(/500/);
    sim.setFaults({});
    expect(await ask(start)).toEqual({ status: 'not_found' });
    expect(sim.subscription('m-4')).toBeUndefined();
  });

  it('a timeout after success did it: the call times out, asking finds it done, and status agrees', async () => {
    sim.setFaults({ timeoutAfterSuccess: 1, latencyMs: 5 });
    const start = op('billing.start', { member_id: 'm-5', product_id: 'silver', expires_at: later(30) });
    await expect(call(start, 300)).rejects.toThrow();
    sim.setFaults({});
    expect(await ask(start)).toMatchObject({ status: 'succeeded', response: { member_id: 'm-5', status: 'active', product_id: 'silver' } });
    expect(sim.subscription('m-5')?.status).toBe('active');
    expect(sim.counters.timeouts).toBe(1);
  });

  it('the same seed gives the same fault schedule', () => {
    const a = new BillingSimulator({ apiKey: 'k', seed: 3 });
    const b = new BillingSimulator({ apiKey: 'k', seed: 3 });
    const draws = (s: BillingSimulator) => Array.from({ length: 20 }, () => (s as unknown as { roll(p: number): boolean }).roll(0.5));
    expect(draws(a)).toEqual(draws(b));
  });
});
