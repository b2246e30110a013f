// The simulated outside world for a local engine: `npm start` (and `seigo sim providers`) run the
// Stripe and KOMOJU simulators on loopback and point providers named `stripe` and `komoju` at them,
// so the engine has a provider to talk to from the first minute. Real providers configured under
// those names win: the simulators never replace a provider the configuration declares.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../kernel/config.ts';
import type { Logger } from '../kernel/logger.ts';
import { KomojuSimulator } from '../providers/komoju/simulator.ts';
import { StripeSimulator } from '../providers/stripe/simulator.ts';

export interface LocalSimulators {
  stripe?: { url: string; sim: StripeSimulator };
  komoju?: { url: string; sim: KomojuSimulator };
  stop(): Promise<void>;
}

function secretFile(dataDir: string, name: string, make: () => string): string {
  mkdirSync(dataDir, { recursive: true });
  const p = join(dataDir, name);
  if (!existsSync(p)) writeFileSync(p, make(), { mode: 0o600 });
  return readFileSync(p, 'utf8').trim();
}

/**
 * Starts the simulators for the providers named `stripe` and `komoju` unless the configuration
 * declares them, and adds them to `config` (mutated) with loopback allowed for outbound calls.
 * `seigoBase` is where the simulators send their webhooks.
 */
export async function startLocalSimulators(config: Config, seigoBase: string, log: Logger): Promise<LocalSimulators> {
  const out: LocalSimulators = { async stop() { await Promise.all([out.stripe?.sim.stop(), out.komoju?.sim.stop()]); } };
  if (!config.providers.stripe) {
    const webhookSecret = secretFile(config.dataDir, 'sim-stripe-webhook-secret', () => `whsec_${randomBytes(24).toString('hex')}`);
    const sim = new StripeSimulator({ secretKey: 'sk_test_seigo_simulator', webhookSecret, webhookUrl: `${seigoBase}/webhooks/stripe` });
    const { url } = await sim.start();
    config.providers.stripe = { kind: 'stripe', secretKey: 'sk_test_seigo_simulator', webhookSecrets: [webhookSecret], apiBase: url, toleranceSeconds: 300 };
    out.stripe = { url, sim };
  }
  if (!config.providers.komoju) {
    const webhookSecret = secretFile(config.dataDir, 'sim-komoju-webhook-secret', () => randomBytes(24).toString('hex'));
    const sim = new KomojuSimulator({
      secretKey: 'sk_test_seigo_simulator', webhookSecret, webhookUrl: `${seigoBase}/webhooks/komoju`, settlePayoutsAfterMs: 5_000,
    });
    const { url } = await sim.start();
    config.providers.komoju = { kind: 'komoju', secretKey: 'sk_test_seigo_simulator', webhookSecrets: [webhookSecret], apiBase: url };
    out.komoju = { url, sim };
  }
  if (out.stripe || out.komoju) {
    // The simulators live on loopback, which outbound calls otherwise refuse.
    if (!config.outbound.allow.includes('127.0.0.1')) config.outbound.allow.push('127.0.0.1');
    log.info({ stripe: out.stripe?.url, komoju: out.komoju?.url }, 'provider simulators running (providers "stripe" and "komoju")');
  }
  return out;
}
