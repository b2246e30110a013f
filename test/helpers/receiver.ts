// A real HTTP endpoint on loopback that plays a subscriber: it records every request (raw body
// and headers) and answers as the test tells it to, or not at all.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest { method: string; path: string; headers: IncomingHttpHeaders; body: Buffer }

/** What to answer: a status (and body), or 'hang' to keep the request open without answering. */
export type Answer = { status: number; body?: string } | 'hang';

export interface Receiver {
  /** http://127.0.0.1:PORT/hook */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Changes how later requests are answered. */
  answer(fn: (req: ReceivedRequest) => Answer): void;
  close(): Promise<void>;
}

export async function startReceiver(fn: (req: ReceivedRequest) => Answer = () => ({ status: 200 })): Promise<Receiver> {
  let answer = fn;
  const requests: ReceivedRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(r);
      const a = answer(r);
      if (a === 'hang') { hanging.add(res); return; }
      res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.body ?? '');
    });
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    answer(f) { answer = f; },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
