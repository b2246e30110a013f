// Sends one signed Standard Webhooks notification to a running seigo, like a provider would.
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import type { Config } from '../kernel/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import { signedHeaders } from '../providers/standard-webhooks/signature.ts';

export interface SentWebhook { status: number; webhookId: string; response: unknown }

export async function sendStandardWebhook(config: Config, o: { provider: string; type: string; data: string; id?: string | undefined; url?: string | undefined }) {
  let data: unknown;
  try {
    data = JSON.parse(o.data);
  } catch {
    throw new ConfigError('--data must be a JSON object');
  }
  return postStandardWebhook(config, { ...o, base: o.url ?? `http://${config.host}:${config.port}`, data });
}

/** Signs `{type, timestamp, data}` with the provider's first secret and posts it to `<base>/webhooks/<provider>`. */
export async function postStandardWebhook(
  config: Pick<Config, 'providers'>, o: { provider: string; type: string; data: unknown; id?: string | undefined; base: string },
): Promise<SentWebhook> {
  const p = config.providers[o.provider];
  if (!p || p.kind !== 'standard-webhooks') throw new ConfigError(`no provider "${o.provider}" of kind standard-webhooks in the configuration`);
  const id = o.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const body = JSON.stringify({ type: o.type, timestamp: new Date().toISOString(), data: o.data });
  const res = await request(`${o.base}/webhooks/${o.provider}`, {
    method: 'POST', body, headers: { 'content-type': 'application/json', ...signedHeaders(p.secrets[0]!, id, body) },
  });
  return { status: res.statusCode, webhookId: id, response: await res.body.json().catch(() => null) };
}
