import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchChromium, screenshotPath } from '../helpers/browser.js';
import { refusedUrl } from '../helpers/fake-upstream.js';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed, type TestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-the-dashboard-0123456789';
const HAS_BROWSER = browserAvailable();

/** A gateway in front of two fake upstreams: gpu-a answers, gpu-b fails with 503 when told to. */
async function start(bed: TestBed, env: Record<string, string> = {}) {
  const a = await bed.upstream({ name: 'gpu-a', models: ['llama'] });
  a.defaultBehavior = { type: 'answer', text: 'one two three' };
  const b = await bed.upstream({ name: 'gpu-b', models: ['llama'] });
  b.defaultBehavior = { type: 'answer', text: 'one two three' };
  const gw = await bed.gateway({
    endpoints: [
      { url: a.url, name: 'gpu-a', priority: 1 },
      { url: b.url, name: 'gpu-b', priority: 1 },
    ],
    env: { ADMIN_API_KEY: ADMIN, CACHE: 'memory', ...env },
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
  return { a, b, gw, client };
}

async function signIn(page: Page, url: string, key = ADMIN): Promise<void> {
  await page.goto(`${url}/dashboard`);
  await page.locator('#admin-key').fill(key);
  await page.locator('#login-form button[type=submit]').click();
}

const tile = (page: Page, section: string, id: string) => page.locator(`#${section} [data-tile="${id}"]`);

describe.skipIf(!HAS_BROWSER)('dashboard in Chromium', () => {
  const bed = useTestBed();
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** A page in a context of its own; console errors fail the test, but for those `expected` matches. */
  async function newPage(viewport = { width: 1280, height: 900 }, expected?: RegExp): Promise<Page> {
    const context = await browser.newContext({ viewport });
    bed.onCleanup(() => context.close());
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !expected?.test(m.text())) problems.push(m.text());
    });
    page.on('dialog', (dialog) => void dialog.accept());
    // Every failed request the page makes shows up in the console as an error: none is expected.
    bed.onCleanup(() => expect(problems).toEqual([]));
    return page;
  }

  it('signs in with the keyboard alone, keeps the key in session storage (never in a URL), refuses a wrong key', async () => {
    const { gw } = await start(bed);
    // The wrong key's refusal is the one failed request.
    const page = await newPage(undefined, /status of 401/);
    const urls: string[] = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${gw.url}/dashboard`);
    await page.locator('#login').waitFor();

    // A wrong key: refused, said so, nothing stored.
    // The key's field has the focus on arrival; Tab reaches the button, Shift+Tab comes back.
    const focused = () => page.evaluate('document.activeElement?.id || document.activeElement?.textContent');
    expect(await focused()).toBe('admin-key');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Sign in');
    await page.keyboard.press('Shift+Tab');
    expect(await focused()).toBe('admin-key');
    await page.keyboard.type('not-the-admin-key-000000');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#login-error').textContent()).toContain('refused');
    expect(await page.evaluate('sessionStorage.length')).toBe(0);

    // The right key, typed and sent with Enter.
    await page.locator('#admin-key').focus();
    await page.keyboard.type(ADMIN);
    await page.keyboard.press('Enter');
    await page.locator('#endpoint-rows tr[data-endpoint="gpu-a"]').waitFor();
    expect(await page.evaluate('Object.values(sessionStorage)')).toEqual([ADMIN]);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(urls.some((u) => u.includes(ADMIN))).toBe(false);

    // A reload keeps the session (same tab); signing out forgets the key.
    await page.reload();
    await page.locator('#endpoint-rows tr[data-endpoint="gpu-a"]').waitFor();
    await page.locator('#sign-out').click();
    await page.locator('#login').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
  });

  it('shows every endpoint and its state, and the traffic figures move after traffic', async () => {
    const { b, gw, client } = await start(bed);
    const page = await newPage();
    await signIn(page, gw.url);
    const rowA = page.locator('#endpoint-rows tr[data-endpoint="gpu-a"]');
    await rowA.waitFor();
    await expect.poll(() => page.locator('#endpoint-rows tr').count()).toBe(2);
    expect(await rowA.locator('[data-label="State"] .pill').textContent()).toBe('healthy');
    expect(await rowA.locator('[data-label="Priority"]').textContent()).toBe('1');
    expect(await rowA.locator('[data-label="Models"]').textContent()).toBe('llama');
    await expect.poll(() => tile(page, 'traffic', 'requests').textContent()).toBe('0');

    // Known traffic: 6 streams served by gpu-a; then 6 requests that try gpu-b first, which fails until
    // it is ejected (each answer fails over to gpu-a).
    const prefer = (endpoint: string) => ({ 'x-gateway': { endpoint, cache: false } }) as object;
    for (let i = 0; i < 6; i++) {
      const stream = await client.chat.completions.create({
        model: 'llama',
        stream: true,
        messages: [{ role: 'user', content: `hello ${i}` }],
        ...prefer('gpu-a'),
      });
      for await (const _ of stream);
    }
    b.defaultBehavior = { type: 'status', status: 503 };
    for (let i = 0; i < 6; i++)
      await client.chat.completions.create({
        model: 'llama',
        messages: [{ role: 'user', content: `again ${i}` }],
        ...prefer('gpu-b'),
      });

    await expect.poll(() => tile(page, 'traffic', 'requests').textContent(), { timeout: 10_000 }).toBe('12');
    await expect
      .poll(() =>
        page.locator('#endpoint-rows tr[data-endpoint="gpu-b"] [data-label="State"] .pill').textContent(),
      )
      .toMatch(/^ejected until /);
    // Time to first token per endpoint, from the streams it served.
    expect(await rowA.locator('[data-label="TTFT p50 / p95"]').textContent()).toMatch(/^≈\d[\d.,]* ms \/ /);
    const lastError = await page
      .locator('#endpoint-rows tr[data-endpoint="gpu-b"] [data-label="Last error"]')
      .textContent();
    expect(lastError).toMatch(/at /);
    expect(await tile(page, 'traffic', 'recovery').textContent()).toMatch(/^[1-9]\d* · 0 · 0$/);
    expect(await page.locator('#readiness').textContent()).toBe('degraded');
    expect(await page.locator('#charts figure').count()).toBe(5);

    await page.screenshot({ path: await screenshotPath('dashboard-desktop.png'), fullPage: true });

    // A phone: nothing wider than the screen, tables as cards, still every endpoint.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    expect(await rowA.locator('[data-label="State"]').isVisible()).toBe(true);
    await page.screenshot({ path: await screenshotPath('dashboard-phone.png'), fullPage: false });
  });

  it('creates a key (shown once, with a copy button), rotates and revokes it: the API follows', async () => {
    const { gw } = await start(bed);
    const page = await newPage();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await signIn(page, gw.url);
    await page.locator('#key-rows').waitFor({ state: 'attached' });

    await page.locator('#team-form input[name=id]').fill('research');
    await page.locator('#team-form button[type=submit]').click();
    await page.locator('#team-rows tr[data-team="research"]').waitFor();

    await page.locator('#key-form input[name=name]').fill('alice laptop');
    await page.locator('#key-form input[name=team]').fill('research');
    await page.locator('#key-form button[type=submit]').click();
    await page.locator('#secret').waitFor();
    const secret = await page.locator('#secret-value').inputValue();
    expect(secret).toMatch(/^sk-gw-/);
    await page.locator('#secret-copy').click();
    await expect.poll(() => page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    await page.locator('#secret-done').click();
    expect(await page.locator('#secret').isHidden()).toBe(true);
    expect(await page.locator('#secret-value').inputValue()).toBe('');
    expect(await page.evaluate('document.activeElement?.id')).toBe('keys-title');

    const row = page.locator('#key-rows tr', { hasText: 'alice laptop' });
    await row.waitFor();
    expect(await row.locator('[data-label="Team"]').textContent()).toBe('research');
    // The secret is not on the page any more, and never was in the list.
    expect(await page.content()).not.toContain(secret);

    const call = (key: string) =>
      fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
    expect(await call(secret)).toBe(200);

    await row.getByRole('button', { name: 'Rotate alice laptop' }).click();
    await page.locator('#secret').waitFor();
    const rotated = await page.locator('#secret-value').inputValue();
    expect(rotated).not.toBe(secret);
    expect(await call(secret)).toBe(401);
    expect(await call(rotated)).toBe(200);

    await row.getByRole('button', { name: 'Revoke alice laptop' }).click();
    await expect.poll(() => row.locator('.pill').textContent()).toBe('revoked');
    expect(await call(rotated)).toBe(401);
    await expect
      .poll(() => page.locator('#team-rows tr[data-team="research"] [data-label="Keys"]').textContent())
      .toBe('0');
    // A secret still on screen is gone with Sign out.
    await page.locator('#key-form input[name=name]').fill('bob');
    await page.locator('#key-form button[type=submit]').click();
    await page.locator('#secret').waitFor();
    await page.locator('#sign-out').click();
    expect(await page.locator('#secret-value').inputValue()).toBe('');
    expect(await page.locator('#secret').isHidden()).toBe(true);
  });

  it('usage and cost by key for a period, from the ledger', async () => {
    const { gw } = await start(bed);
    const res = await fetch(`${gw.url}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'batch jobs' }),
    });
    const { key } = (await res.json()) as { key: string };
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    for (let i = 0; i < 3; i++)
      await client.chat.completions.create({
        model: 'llama',
        messages: [{ role: 'user', content: `n${i}` }],
      });

    const page = await newPage();
    await signIn(page, gw.url);
    const row = page.locator('#usage-rows tr', { hasText: 'batch jobs' });
    await row.waitFor();
    expect(await row.locator('[data-label="Requests"]').textContent()).toBe('3');
    expect(Number(await row.locator('[data-label="Completion tokens"]').textContent())).toBeGreaterThan(0);
    expect(await tile(page, 'usage', 'requests').textContent()).toBe('3');

    await page.locator('#usage-form select[name=group]').selectOption('model');
    await page.locator('#usage-rows tr', { hasText: 'llama' }).waitFor();
    expect(await page.locator('#usage-group-head').textContent()).toBe('Model');
  });

  it('adds, re-weights, drains and removes a runtime endpoint; config endpoints are not offered', async () => {
    const { gw } = await start(bed);
    const extra = await bed.upstream({ name: 'gpu-c', models: ['llama'] });
    const page = await newPage();
    await signIn(page, gw.url);
    await page.locator('#endpoint-rows tr[data-endpoint="gpu-a"]').waitFor();
    expect(
      await page.locator('#endpoint-rows tr[data-endpoint="gpu-a"] [data-label="Actions"]').textContent(),
    ).toBe('config file');

    await page.locator('#endpoints summary').click();
    const form = page.locator('#endpoint-form');
    await form.locator('input[name=name]').fill('gpu-c');
    await form.locator('input[name=url]').fill(extra.url);
    await form.locator('input[name=weight]').fill('2');
    await form.locator('input[name=models]').fill('llama');
    await form.locator('button[type=submit]').click();
    const row = page.locator('#endpoint-rows tr[data-endpoint="gpu-c"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('runtime');
    expect(await row.locator('[data-label="Weight"]').textContent()).toBe('2');
    // Priority left empty: the gateway's default (1), not a priority that would take all traffic.
    expect(await row.locator('[data-label="Priority"]').textContent()).toBe('1');

    // A weight being typed survives the page's updates (rows are not rebuilt under the keyboard).
    const weight = row.getByLabel('Weight of gpu-c');
    await weight.fill('5');
    const updated = await page.locator('#updated').textContent();
    await expect.poll(() => page.locator('#updated').textContent(), { timeout: 5_000 }).not.toBe(updated);
    expect(await weight.inputValue()).toBe('5');
    expect(await page.evaluate('document.activeElement?.getAttribute("aria-label")')).toBe('Weight of gpu-c');
    // Enter sets it.
    await weight.press('Enter');
    await expect.poll(() => row.locator('[data-label="Weight"]').textContent()).toBe('5');
    expect(gw.gateway.registry.endpoints.find((e) => e.config.name === 'gpu-c')?.config.weight).toBe(5);

    // An empty weight is refused in words next to the table, not sent as 0.
    await row.getByLabel('Weight of gpu-c').fill('');
    await row.getByRole('button', { name: 'Set weight' }).click();
    await expect
      .poll(() => page.locator('#endpoints-error').textContent())
      .toContain('Type a weight for gpu-c');
    expect(gw.gateway.registry.endpoints.find((e) => e.config.name === 'gpu-c')?.config.weight).toBe(5);

    await row.getByRole('button', { name: 'Drain' }).click();
    await expect.poll(() => row.locator('[data-label="State"] .pill').textContent()).toBe('draining');

    await row.getByRole('button', { name: 'Remove' }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect(gw.gateway.registry.endpoints.map((e) => e.config.name)).toEqual(['gpu-a', 'gpu-b']);

    // An endpoint nothing answers at is not shown as healthy, and the reason is on the page (the form
    // is still open).
    await form.locator('input[name=name]').fill('gpu-dead');
    await form.locator('input[name=url]').fill(await refusedUrl());
    await form.locator('input[name=models]').fill('llama');
    await form.locator('button[type=submit]').click();
    const dead = page.locator('#endpoint-rows tr[data-endpoint="gpu-dead"] [data-label="State"]');
    await dead.waitFor();
    await gw.gateway.discovery.refresh();
    await expect.poll(() => dead.textContent(), { timeout: 5_000 }).not.toContain('healthy');
  });

  it('shows the cache and clears it', async () => {
    const { gw, client } = await start(bed);
    for (let i = 0; i < 3; i++)
      await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'same' }] });
    const page = await newPage();
    await signIn(page, gw.url);
    await expect.poll(() => tile(page, 'cache', 'entries').textContent()).toBe('1');
    expect(await tile(page, 'cache', 'ratio').textContent()).toMatch(/^66[.,]67%$/);
    await page.locator('#cache-clear').click();
    await expect.poll(() => page.locator('#toast').textContent()).toBe('Cleared 1 entries');
    await expect.poll(() => tile(page, 'cache', 'entries').textContent()).toBe('0');
  });
});

describe('GET /dashboard', () => {
  const bed = useTestBed();

  it('serves the page and its files with a strict content security policy; nothing else under /dashboard', async () => {
    const { gw } = await start(bed);
    for (const [file, type] of [
      ['/dashboard', 'text/html'],
      ['/dashboard/dashboard.js', 'text/javascript'],
      ['/dashboard/dashboard.css', 'text/css'],
    ] as const) {
      const res = await fetch(`${gw.url}${file}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await res.text()).length).toBeGreaterThan(100);
    }
    const missing = await fetch(`${gw.url}/dashboard/../package.json`);
    expect(missing.status).toBe(404);
    const other = await fetch(`${gw.url}/dashboard/secrets.txt`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('route_not_found');
    const post = await fetch(`${gw.url}/dashboard`, { method: 'POST' });
    expect(post.status).toBe(405);
  });
});
