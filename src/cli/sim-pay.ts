// `seigo sim pay <deposit-id>`: the customer's side of a deposit that awaits payment, against the engine that
// `npm start` runs in this directory (its port and simulated providers come from its runtime file).
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig } from '../kernel/config.ts';
import { SeigoError } from '../kernel/errors.ts';
import { createLogger } from '../kernel/logger.ts';
import { SIM_BANK_PROVIDER } from '../sim/local.ts';
import { simPay } from '../sim/pay.ts';
import { applyLocalDefaults } from './bootstrap.ts';
import { runtimeOptions } from './options.ts';
import { liveRuntime } from './runtime-file.ts';

const seconds = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('seconds from 0 to 3600');
  return n;
};

export function simPayCommand(sim: Command): void {
  runtimeOptions(sim.command('pay'))
    .description('Pay a deposit that awaits payment, as its customer: konbini / Pay-easy at the KOMOJU simulator\'s till (速報, then 確報), '
      + 'a bank transfer through the simulated bank (a signed transfer notice to the virtual account); then wait until seigo books it')
    .argument('<deposit-id>', 'the deposit (POST /v1/deposits answered its id)')
    .option('--url <url>', 'seigo\'s base URL (default: the seigo running in this directory)')
    .option('--no-preliminary', 'konbini / Pay-easy: only the final notice (確報), no preliminary one (速報)')
    .addOption(new Option('--wait <s>', 'seconds to wait for the deposit to succeed (0: do not wait)').default(30).argParser(seconds))
    .action(async (id: string, o: { url?: string; preliminary: boolean; wait: number }) => {
      const config = loadConfig();
      const running = liveRuntime(config.dataDir);
      if (!running && !o.url) {
        throw new SeigoError('not_running', `no seigo runs with the data directory ${config.dataDir}: start it with \`npm start\` `
          + '(or run this where it runs, or give --data-dir / --url)', 404);
      }
      for (const [name, provider] of Object.entries(running?.providers ?? {})) config.providers[name] ??= provider;
      if (config.deposits.bankTransferProvider === undefined && config.providers[SIM_BANK_PROVIDER]) {
        config.deposits.bankTransferProvider = SIM_BANK_PROVIDER;
      }
      applyLocalDefaults(config, createLogger('silent'));
      const apiKey = config.apiClients[0]?.key;
      if (!apiKey) throw new SeigoError('no_api_key', 'no API client key: add one under "apiClients" in the configuration', 409);
      const host = running && running.host !== '0.0.0.0' && running.host !== '::' ? running.host : '127.0.0.1';
      const base = (o.url ?? `http://${host}:${running!.port}`).replace(/\/$/, '');
      const r = await simPay(config, id, { base, apiKey, preliminary: o.preliminary, waitMs: o.wait * 1000 });
      console.log(JSON.stringify(r));
      if (o.wait > 0 && r.deposit.status !== 'succeeded') process.exitCode = 1;
    });
}
