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

/** The `outbound.allow` entries (`127.0.0.1:<port>`) that let outbound calls reach the running simulators. */
export function simulatorEgress(sims: Pick<LocalSimulators, 'stripe' | 'komoju'>): string[] {
  return [sims.stripe?.url, sims.komoju?.url].filter((u): u is string => u !== undefined).map((u) => new URL(u).host);
}

/**
 * Starts the simulators for the providers named `stripe` and `komoju` unless the configuration
 * declares them, and adds them to `config` (mutated) with their ports (not all of loopback) allowed for outbound calls.
 * `seigoBase` is where the simulators send their webhooks.
 */
export async function startLocalSimulators(config: Config, seigoBase: string, log: Logger): Promise<LocalSimulators> {
  const out: LocalSimulators = { async stop() { await Promise.all([out.stripe?.sim.stop(), out.komoju?.sim.stop()]); } };
  if (!config.providers.stripe) {
    const webhookSecret = secretFile(config.dataDir, 'sim-stripe-webhook-secret', () => `whsec_${randomBytes(24).toString('hex')}`);
    const sim = new StripeSimulator({
      secretKey: 'sk_test_seigo_simulator', webhookSecret, webhookUrl: `${seigoBase}/webhooks/stripe`,
      stateFile: join(config.dataDir, 'sim-stripe-state.json'),
    });
    const { url } = await sim.start();
    config.providers.stripe = { kind: 'stripe', secretKey: 'sk_test_seigo_simulator', webhookSecrets: [webhookSecret], apiBase: url, toleranceSeconds: 300 };
    out.stripe = { url, sim };
  }
  if (!config.providers.komoju) {
    const webhookSecret = secretFile(config.dataDir, 'sim-komoju-webhook-secret', () => randomBytes(24).toString('hex'));
    const sim = new KomojuSimulator({
      secretKey: 'sk_test_seigo_simulator', webhookSecret, webhookUrl: `${seigoBase}/webhooks/komoju`, settlePayoutsAfterMs: 5_000,
      stateFile: join(config.dataDir, 'sim-komoju-state.json'),
    });
    const { url } = await sim.start();
    config.providers.komoju = { kind: 'komoju', secretKey: 'sk_test_seigo_simulator', webhookSecrets: [webhookSecret], apiBase: url };
    out.komoju = { url, sim };
  }
  if (out.stripe || out.komoju) {
    // The simulators live on loopback, which outbound calls otherwise refuse: allow their own ports
    // only, not loopback as a whole (a subscription must not reach the database or the admin API).
    const allowed = simulatorEgress(out);
    for (const entry of allowed) if (!config.outbound.allow.includes(entry)) config.outbound.allow.push(entry);
    log.info({ stripe: out.stripe?.url, komoju: out.komoju?.url, outboundAllowed: allowed }, 'provider simulators running (providers "stripe" and "komoju"); outbound calls may reach their ports');
  }
  return out;
}

/** The provider name of the simulated bank (`bank`) unless the configuration has a bank-transfer provider or a provider named `bank`. */
export const SIM_BANK_PROVIDER = 'bank';

/**
 * A bank that announces transfers into virtual accounts by Standard Webhooks (`bank_transfer.received`), so the
 * bank-transfer deposit works from the first minute: provider `bank`, its secret under the data dir, named in
 * `deposits.bankTransferProvider` (mutated). `seigo sim pay <deposit-id>` plays the bank and sends the notice.
 */
export function simulatedBank(config: Config, log: Logger): string | undefined {
  if (config.providers[SIM_BANK_PROVIDER] || config.deposits.bankTransferProvider !== undefined) return undefined;
  const secret = secretFile(config.dataDir, 'sim-bank-webhook-secret', () => `whsec_${randomBytes(32).toString('base64')}`);
  config.providers[SIM_BANK_PROVIDER] = { kind: 'standard-webhooks', secrets: [secret], toleranceSeconds: 300 };
  config.deposits.bankTransferProvider = SIM_BANK_PROVIDER;
  log.info({ provider: SIM_BANK_PROVIDER }, 'simulated bank: POST /webhooks/bank takes transfer notices (`seigo sim pay <deposit-id>` sends one)');
  return SIM_BANK_PROVIDER;
}
