// A KOMOJU simulator and a test engine wired to it: the engine calls the simulator's API, the
// simulator sends its webhooks to the engine.
import type { ConfigInput } from '../../src/kernel/config.ts';
import { KomojuSimulator, type KomojuSimulatorOptions } from '../../src/providers/komoju/index.ts';
import { startTestEngine, type TestEngine } from './engine.ts';

export const KOMOJU_SECRET_KEY = 'sk_test_komoju';

export interface KomojuEngine {
  t: TestEngine;
  sim: KomojuSimulator;
  /** Closes the engine, then stops the simulator. */
  close(): Promise<void>;
}

export interface KomojuEngineOptions {
  seed: number;
  webhookSecret: string;
  /** More simulator options (fees, settle delay, ...). */
  simulator?: Partial<KomojuSimulatorOptions>;
  /** Merged over the KOMOJU provider and a fast-failing `komoju` endpoint (pass `endpoints: {}` for the defaults). */
  config?: Partial<ConfigInput>;
  worker?: boolean;
  /** Whether the simulator delivers its webhooks to the engine. Default true. */
  webhooks?: boolean;
}

export async function startKomojuEngine(opts: KomojuEngineOptions): Promise<KomojuEngine> {
  const sim = new KomojuSimulator({ seed: opts.seed, secretKey: KOMOJU_SECRET_KEY, webhookSecret: opts.webhookSecret, ...opts.simulator });
  const { url } = await sim.start();
  let t: TestEngine;
  try {
    t = await startTestEngine({
      config: {
        providers: { komoju: { kind: 'komoju', secretKey: KOMOJU_SECRET_KEY, webhookSecrets: [opts.webhookSecret], apiBase: url } },
        endpoints: { komoju: { timeoutMs: 1_000, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } } },
        ...opts.config,
      },
      ...(opts.worker ? { worker: true } : {}),
    });
  } catch (e) {
    await sim.stop();
    throw e;
  }
  if (opts.webhooks !== false) sim.webhookUrl = `${t.url}/webhooks/komoju`;
  return {
    t, sim,
    async close() {
      try {
        await t.close();
      } finally {
        await sim.stop();
      }
    },
  };
}
