// Sends one signed Standard Webhooks notification to a running seigo, like a provider would.
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import type { Config } from '../kernel/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import { signedHeaders } from '../providers/standard-webhooks/signature.ts';

export async function sendStandardWebhook(config: Config, o: { provider: string; type: string; data: string; id?: string | undefined; url?: string | undefined }) {
  const p = config.providers[o.provider];
  if (!p || p.kind !== 'standard-webhooks') throw new ConfigError(`no provider "${o.provider}" of kind standard-webhooks in the configuration`);
  let data: unknown;
  try {
    data = JSON.parse(o.data);
  } catch {
    throw new ConfigError('--data must be a JSON object');
  }
  const id = o.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const body = JSON.stringify({ type: o.type, timestamp: new Date().toISOString(), data });
  const base = o.url ?? `http://${config.host}:${config.port}`;
  const res = await request(`${base}/webhooks/${o.provider}`, {
    method: 'POST', body, headers: { 'content-type': 'application/json', ...signedHeaders(p.secrets[0]!, id, body) },
  });
  return { status: res.statusCode, webhookId: id, response: await res.body.json().catch(() => null) };
}
