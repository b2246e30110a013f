import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'seigo-config-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(content: unknown): string {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, JSON.stringify(content));
  return p;
}

describe('secrets from the environment in seigo.config.json', () => {
  const file = configFile({
    providers: {
      stripe: { kind: 'stripe', secretKey: '${STRIPE_SECRET_KEY}', webhookSecrets: ['${STRIPE_WEBHOOK_SECRET}'] },
      acme: { kind: 'standard-webhooks', secrets: ['whsec_${ACME_SECRET_B64}'] },
    },
    adminTokens: [{ name: 'oncall', token: 'literal-$${NOT_A_REFERENCE}', role: 'operator' }],
  });

  it('replaces ${NAME} with the variable, keeps $${NAME} literal', () => {
    const c = loadConfig({
      SEIGO_CONFIG: file, STRIPE_SECRET_KEY: 'sk_live_from_env', STRIPE_WEBHOOK_SECRET: 'whsec_from_env', ACME_SECRET_B64: 'QUJDREVGRw==',
    }, dir);
    expect(c.providers.stripe).toMatchObject({ secretKey: 'sk_live_from_env', webhookSecrets: ['whsec_from_env'] });
    expect(c.providers.acme).toMatchObject({ secrets: ['whsec_QUJDREVGRw=='] });
    expect(c.adminTokens[0]!.token).toBe('literal-${NOT_A_REFERENCE}');
  });

  it('names every key whose variable is not set, and never prints a value', () => {
    let message = '';
    try {
      loadConfig({ SEIGO_CONFIG: file, STRIPE_WEBHOOK_SECRET: 'whsec_do_not_print' }, dir);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('providers.stripe.secretKey: refers to ${STRIPE_SECRET_KEY}, which is not set');
    expect(message).toContain('providers.acme.secrets.0: refers to ${ACME_SECRET_B64}');
    expect(message).not.toContain('whsec_do_not_print');
  });
});
