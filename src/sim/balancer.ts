// The load balancer in front of several `seigo api` processes, as a deployment would have one:
// providers' webhooks and the wallet backend's calls go to one URL, and each request goes to the
// next API process in turn. A process that refuses the connection (killed, restarting) is skipped;
// if none answers, the caller gets 502 and retries, as it would behind a real balancer.
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export class Balancer {
  private next = 0;
  private server: Server | undefined;
  readonly counters = { requests: 0, retriedOnOtherBackend: 0, badGateway: 0 };

  /** `backends()` lists the API ports at the time of each request. */
  constructor(private readonly backends: () => readonly number[]) {}

  async start(): Promise<{ url: string }> {
    const server = createServer((req, res) => {
      this.counters.requests++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.forward(req, Buffer.concat(chunks), res, 0));
      req.on('error', () => res.destroy());
    });
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  private forward(req: IncomingMessage, body: Buffer, res: ServerResponse, tried: number): void {
    const ports = this.backends();
    if (ports.length === 0 || tried >= ports.length) {
      this.counters.badGateway++;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('no API process answered');
      return;
    }
    const port = ports[this.next++ % ports.length]!;
    const headers = { ...req.headers, host: `127.0.0.1:${port}`, connection: 'close' };
    let started = false;
    const up = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (r) => {
      started = true;
      res.writeHead(r.statusCode ?? 502, towardsClient(r.headers));
      r.pipe(res);
      r.on('error', () => res.destroy());
    });
    up.on('error', (e: NodeJS.ErrnoException) => {
      if (started) return res.destroy();
      // Refused: nothing reached that process, so another may take the request. Anything else
      // (the process died mid-request) may have had an effect: the caller must decide, as with a real balancer.
      if (e.code === 'ECONNREFUSED') {
        this.counters.retriedOnOtherBackend++;
        this.forward(req, body, res, tried + 1);
        return;
      }
      res.destroy();
    });
    up.end(body);
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/**
 * The backend's response headers without its hop-by-hop ones: each backend request closes its
 * connection (a killed process leaves no stale socket), but the client's connection to the
 * balancer stays open. Passed on, `connection: close` made every client tear down its socket after
 * each answer (with an error object and its stack built each time), which at 10,000 deposits with
 * duplicate storms took most of the harness's CPU.
 */
export function towardsClient(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers };
  delete out.connection;
  delete out['keep-alive'];
  return out;
}
