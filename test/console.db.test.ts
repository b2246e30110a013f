// The operator console as a person uses it: Debian's chromium (playwright-core, no browser download)
// against a real engine on a real PostgreSQL, with the Stripe simulator and a real HTTP subscriber on
// loopback. Sign in, read a deposit's story, redrive its dead delivery, and a viewer who cannot act.
// Screenshots of each screen go to reports/console/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_DIST } from '../src/api/console.ts';
import { StripeSimulator } from '../src/providers/stripe/simulator.ts';
import { admin } from './helpers/admin.ts';
import { eventually, OPERATOR_TOKEN, startTestEngine, VIEWER_TOKEN, type TestEngine } from './helpers/engine.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

const CHROMIUM = process.env.SEIGO_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(import.meta.dirname, '..', 'reports', 'console');
const API_KEY = 'wallet-backend-key-console-0123456789';
const WEBHOOK_SECRET = 'whsec_test_seigo_console';
const SECOND_OPERATOR_TOKEN = 'test-second-operator-token-0123';

// Without the browser (a dev machine without Debian's chromium) the file says why and skips; in CI, which
// installs it, a missing browser fails the run instead.
const haveBrowser = existsSync(CHROMIUM) || Boolean(process.env.CI);
if (!haveBrowser) console.warn(`console tests skipped: no browser at ${CHROMIUM} (apt-get install chromium)`);

let sim: StripeSimulator;
let rx: Receiver;
let t: TestEngine;
let browser: Browser;
let crmDown = true;
let depositId = '';
let depositTransactionId = '';
let caseId = '';

interface StatusBody { items: { kind: string; id: string; status: string; detail: string }[] }

beforeAll(async () => {
  if (!haveBrowser) return;
  // The prepare step builds the console on npm install; build it here if this checkout has not.
  if (!existsSync(join(CONSOLE_DIST, 'index.html'))) {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'scripts', 'build-console.mjs')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('could not build the console');
  }
  mkdirSync(SHOTS, { recursive: true });
  sim = new StripeSimulator({ seed: 14, secretKey: 'sk_test_seigo', webhookSecret: WEBHOOK_SECRET });
  const { url } = await sim.start();
  // /crm answers 500 until the test says it is back; /audit always fails, so a dead delivery stays for the viewer.
  rx = await startReceiver((r) => (r.path === '/audit' || crmDown ? { status: 500, body: 'subscriber down' } : { status: 200 }));
  t = await startTestEngine({
    worker: true,
    config: {
      providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [WEBHOOK_SECRET], apiBase: url, searchLagSeconds: 0 } },
      apiClients: [{ name: 'wallet', key: API_KEY }],
      adminTokens: [
        { name: 'op', token: OPERATOR_TOKEN, role: 'operator' }, { name: 'op2', token: SECOND_OPERATOR_TOKEN, role: 'operator' },
        { name: 'view', token: VIEWER_TOKEN, role: 'viewer' },
      ],
    },
  });
  const base = rx.url.replace(/\/hook$/, '');
  for (const name of ['crm', 'audit']) {
    const s = await admin(t.url, 'POST', '/subscriptions', { name, topic: 'deposit.succeeded', target: { type: 'http', url: `${base}/${name}` }, retry_schedule: [] });
    expect(s.status).toBe(201);
  }
  const res = await request(`${t.url}/v1/deposits`, {
    method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'idempotency-key': 'console-dep-1' },
    body: JSON.stringify({ method: 'card', user_id: 'console-u1', amount: 5_000, payment_method: 'pm_card_visa' }),
  });
  expect(res.statusCode).toBe(201);
  depositId = ((await res.body.json()) as { id: string }).id;
  // The charge succeeds, deposit.succeeded goes to both subscribers and both deliveries die.
  await eventually(async () => {
    const s = await admin<StatusBody>(t.url, 'GET', `/status/deposit/${depositId}`);
    return s.json.items.filter((i) => i.kind === 'delivery' && i.status === 'dead').length === 2;
  });
  const credited = await request(`${t.url}/v1/deposits/${depositId}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  depositTransactionId = ((await credited.body.json()) as { ledger_transaction_id: string }).ledger_transaction_id;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await rx?.close();
  await sim?.stop();
});

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${t.url}/console/`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=who]');
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });

describe.skipIf(!haveBrowser)('operator console in a browser', () => {
  it('refuses a wrong token with its code, then signs in with an httpOnly, SameSite=Strict cookie', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`${t.url}/console/`);
    await page.fill('input[name=token]', 'not-a-configured-token-000');
    await page.click('button[type=submit]');
    expect(await page.textContent('[data-testid=problem-code]')).toBe('unauthorized');
    await shot(page, 'sign-in');
    await page.fill('input[name=token]', OPERATOR_TOKEN);
    await page.click('button[type=submit]');
    expect(await page.textContent('[data-testid=who]')).toBe('op · operator');
    const [cookie] = await ctx.cookies();
    expect(cookie).toMatchObject({ name: 'seigo_session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(OPERATOR_TOKEN);

    // The cookie alone does not change anything: a request without the CSRF header is refused.
    const dead = await admin<{ data: { id: string }[] }>(t.url, 'GET', '/deliveries?status=dead&subscription=audit');
    const noCsrf = await page.evaluate(async (id) => {
      const r = await fetch(`/admin/v1/deliveries/${id}/redrive`, { method: 'POST' });
      return { status: r.status, body: await r.json() as { code: string } };
    }, dead.json.data[0]!.id);
    expect(noCsrf).toMatchObject({ status: 403, body: { code: 'csrf_header_required' } });

    // A session that is not ours (tampered, or from before a restart) goes back to sign-in, saying why.
    await ctx.addCookies([{ ...cookie!, value: `${cookie!.value.split('.')[0]}.forged` }]);
    await page.reload();
    await page.waitForSelector('input[name=token]');
    expect(await page.textContent('[data-testid=problem-code]')).toBe('session_invalid');
    await ctx.close();
  });

  it("finds a deposit by its id and shows its story: the charge, and each subscriber's delivery", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(page, OPERATOR_TOKEN);
    await page.fill('input[name=id]', depositId);
    await page.click('text=Show story');
    await page.waitForSelector('[data-testid=timeline] li[data-kind=operation]');
    const steps = await page.$$eval('[data-testid=timeline] li', (lis) => lis.map((li) => `${li.dataset.kind}:${li.dataset.status}`));
    // Each dead delivery opened a case, which is part of the story too.
    expect(steps.filter((s) => !s.startsWith('case:')).sort()).toEqual(['delivery:dead', 'delivery:dead', 'operation:succeeded']);
    expect(steps.filter((s) => s === 'case:open')).toHaveLength(2);
    expect(await page.textContent('.summary')).toContain('failed');
    expect(new URL(page.url()).searchParams.get('id')).toBe(depositId);
    expect(await page.locator('[data-testid=timeline] button', { hasText: 'Redrive' }).count()).toBe(2);
    await shot(page, 'story');
    await page.close();
  });

  it('redrives a dead delivery from the DLQ once the subscriber is back; it is delivered', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(page, OPERATOR_TOKEN);
    await page.goto(`${t.url}/console/deliveries?status=dead&subscription=crm`);
    const row = page.locator('[data-testid=deliveries] tbody tr');
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    const id = await row.first().getAttribute('data-id');
    await shot(page, 'deliveries');
    crmDown = false;
    await row.first().locator('button', { hasText: 'Redrive' }).click();
    expect(await page.textContent('[role=status]')).toBe('redriven: 1');
    await eventually(async () => {
      const d = await admin<{ status: string }>(t.url, 'GET', `/deliveries/${id}`);
      return d.json.status === 'delivered';
    });
    expect(rx.requests.filter((r) => r.path === '/crm').length).toBeGreaterThanOrEqual(2);
    await page.goto(`${t.url}/console/deliveries?view=inbox&status=processed`);
    await page.locator('[data-testid=inbox]').waitFor();
    await shot(page, 'inbox');
    await page.close();
  });

  it('shows cases and reconciliation runs', async () => {
    const opened = await admin(t.url, 'POST', '/cases', {
      kind: 'deposit', cause: 'customer_says_not_credited', subject: { type: 'deposit', id: depositId }, summary: 'Customer says the deposit is missing',
    });
    expect(opened.status).toBe(201);
    caseId = String(opened.json.id);
    const run = await admin(t.url, 'POST', '/reconcile/runs', { source: 'deliveries', from: new Date(Date.now() - 3600_000).toISOString(), to: new Date().toISOString() });
    expect(run.status).toBe(201);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(page, OPERATOR_TOKEN);
    await page.goto(`${t.url}/console/cases?id=${String(opened.json.id)}`);
    await page.locator('[data-testid=case-detail]').waitFor();
    expect(await page.textContent('[data-testid=cases]')).toContain('customer_says_not_credited');
    await page.click('text=Assign to me');
    await page.locator('[data-testid=case-detail]', { hasText: 'assignee op' }).waitFor();
    await shot(page, 'cases');
    await page.goto(`${t.url}/console/reconcile?run=${String(run.json.id)}`);
    await page.locator('[data-testid=runs] tbody tr').first().waitFor();
    await shot(page, 'reconcile');
    await page.close();
  });

  it('a viewer sees the DLQ but has no button to act, and the server refuses the call anyway', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(page, VIEWER_TOKEN);
    expect(await page.textContent('[data-testid=who]')).toBe('view · viewer');
    await page.goto(`${t.url}/console/deliveries?status=dead&subscription=audit`);
    const row = page.locator('[data-testid=deliveries] tbody tr');
    await row.first().waitFor();
    expect(await page.locator('button', { hasText: 'Redrive' }).count()).toBe(0);
    await page.goto(`${t.url}/console/story?id=${depositId}`);
    await page.waitForSelector('[data-testid=timeline] li[data-kind=delivery]');
    // Opening a case is reading; nothing that changes a record is offered.
    expect(await page.locator('[data-testid=timeline] button', { hasText: /Redrive|Replay/ }).count()).toBe(0);
    // The two dead deliveries' cases and the one opened by hand above.
    expect(await page.locator('[data-testid=timeline] button', { hasText: 'Open case' }).count()).toBe(3);
    await shot(page, 'story-viewer');
    const id = (await admin<{ data: { id: string }[] }>(t.url, 'GET', '/deliveries?status=dead&subscription=audit')).json.data[0]!.id;
    const refused = await page.evaluate(async (deliveryId) => {
      const r = await fetch(`/admin/v1/deliveries/${deliveryId}/redrive`, { method: 'POST', headers: { 'X-Seigo-CSRF': '1' } });
      return { status: r.status, body: await r.json() as { code: string } };
    }, id);
    expect(refused).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    const still = await admin<{ status: string; redrives: number }>(t.url, 'GET', `/deliveries/${id}`);
    expect(still.json).toMatchObject({ status: 'dead', redrives: 0 });
    // Signing out ends the session: the console is back at sign-in.
    await page.click('text=Sign out');
    await page.waitForSelector('input[name=token]');
    await page.reload();
    await page.waitForSelector('input[name=token]');
    await page.close();
  });

  it('resolves a case with a two-person ledger adjustment; approving your own shows its code and posts nothing', async () => {
    const txn = await admin<{ entries: { account_id: string; amount: string }[] }>(t.url, 'GET', `/ledger/transactions/${depositTransactionId}`);
    expect(txn.status).toBe(200);
    const from = txn.json.entries.find((e) => BigInt(e.amount) > 0n)!.account_id;
    const to = txn.json.entries.find((e) => BigInt(e.amount) < 0n)!.account_id;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(page, OPERATOR_TOKEN);
    await page.goto(`${t.url}/console/cases?id=${caseId}`);
    await page.fill('input[placeholder="from account id"]', from);
    await page.fill('input[placeholder="to account id"]', to);
    await page.fill('input[placeholder="amount (minor units)"]', '100');
    await page.fill('input[placeholder=memo]', 'goodwill: 100 back');
    await page.click('text=Propose');
    const row = page.locator('[data-testid=adjustments] tbody tr');
    await row.first().waitFor();
    await row.first().locator('button', { hasText: 'Approve' }).click();
    expect(await page.textContent('[data-testid=problem-code]')).toBe('adjustment_self_approval');
    expect(await page.textContent('.problem')).toContain('a different operator must approve it');
    await shot(page, 'case-self-approval');
    const before = await admin<{ status: string; adjustments: { status: string }[] }>(t.url, 'GET', `/cases/${caseId}`);
    expect(before.json).toMatchObject({ status: 'open', adjustments: [{ status: 'proposed' }] });
    await page.close();

    const second = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await signIn(second, SECOND_OPERATOR_TOKEN);
    await second.goto(`${t.url}/console/cases?id=${caseId}`);
    await second.locator('[data-testid=adjustments] button', { hasText: 'Approve' }).click();
    await second.locator('[data-testid=adjustments]', { hasText: 'posted by op2' }).waitFor();
    await shot(second, 'case-adjustment');
    const after = await admin<{ status: string; adjustments: { status: string; ledger_transaction_id: string | null }[] }>(t.url, 'GET', `/cases/${caseId}`);
    expect(after.json.status).toBe('resolved');
    expect(after.json.adjustments[0]).toMatchObject({ status: 'posted' });
    const posted = await admin<{ entries: { account_id: string; amount: string }[] }>(t.url, 'GET', `/ledger/transactions/${after.json.adjustments[0]!.ledger_transaction_id!}`);
    expect(posted.json.entries.map((e) => [e.account_id, e.amount]).sort()).toEqual([[from, '-100'], [to, '100']].sort());
    await second.close();
  });
});
