// The balancer's answer to a client keeps the client's connection open: hop-by-hop headers of the
// backend's closed connection are not passed on.
import { describe, expect, it } from 'vitest';
import { towardsClient } from './balancer.ts';

describe('towardsClient', () => {
  it("drops the backend's connection and keep-alive headers and keeps the rest", () => {
    const out = towardsClient({ connection: 'close', 'keep-alive': 'timeout=5', 'content-type': 'application/json', 'x-request-id': 'r1' });
    expect(out).toEqual({ 'content-type': 'application/json', 'x-request-id': 'r1' });
  });
});
