import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { useTestBed } from '../helpers/test-bed.js';

const ADMIN = 'admin-key-for-tests-0123456789';

/** A captcha service answering like reCAPTCHA, hCaptcha and Turnstile: form in, `{success}` out. */
async function fakeVerifier(bed: ReturnType<typeof useTestBed>, decide: (form: URLSearchParams) => unknown) {
  const seen: URLSearchParams[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      seen.push(form);
      const answer = decide(form);
      if (answer === 'down') {
        res.writeHead(503).end('unavailable');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  bed.onCleanup(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/siteverify`, seen };
}

describe('permissionless keys: POST /api/v1/keys/claim', () => {
  const bed = useTestBed();

  async function start(claimYaml: string, env: Record<string, string> = {}) {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-claim-');
    await writeFile(`${dir}/gateway.yaml`, `keys:\n  claim:\n${claimYaml}`);
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { CONFIG_FILE: `${dir}/gateway.yaml`, ...env },
    });
    const claim = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/api/v1/keys/claim`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    return { gw, upstream, claim };
  }

  it('off by default: 404 claims_disabled', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url }] });
    const res = await fetch(`${gw.url}/api/v1/keys/claim`, { method: 'POST', body: '{"acceptTerms":true}' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('claims_disabled');
  });

  it('a claimed key works at once, in the permissionless team, expiring in 5 days, 3 in flight at most', async () => {
    const { gw, claim, upstream } = await start('    enabled: true\n');
    const res = await claim({ acceptTerms: true, identity: 'visitor-1' });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { key: string; expiresAt: string; team: string; limits: unknown };
    expect(body.key).toMatch(/^sk-gw-/);
    expect(body.team).toBe('permissionless');
    expect(body.limits).toEqual({ maxParallel: 3 });
    const days = (Date.parse(body.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(4.99);
    expect(days).toBeLessThanOrEqual(5);

    const sdk = new OpenAI({ apiKey: body.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const answer = await sdk.chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();

    upstream.script(
      { type: 'sse', then: 'hang' },
      { type: 'sse', then: 'hang' },
      { type: 'sse', then: 'hang' },
    );
    const aborts = [0, 1, 2].map(() => new AbortController());
    const streams = await Promise.all(
      aborts.map((a) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${body.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'llama', stream: true, messages: [{ role: 'user', content: 'x' }] }),
          signal: a.signal,
        }),
      ),
    );
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200]);
    await expect(
      sdk.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 429, code: 'concurrency_limit_exceeded' });
    for (const a of aborts) a.abort();
  });

  it('works without ADMIN_API_KEY and with it; terms must be accepted; bad bodies are 400s', async () => {
    const { claim } = await start('    enabled: true\n', { ADMIN_API_KEY: ADMIN });
    for (const [body, param] of [
      [{}, 'acceptTerms'],
      [{ acceptTerms: false }, 'acceptTerms'],
      [{ acceptTerms: 'yes' }, 'acceptTerms'],
      [{ acceptTerms: true, identity: '' }, 'identity'],
      [{ acceptTerms: true, extra: 1 }, 'extra'],
    ] as const) {
      const res = await claim(body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    expect((await claim({ acceptTerms: true })).status).toBe(201);
    const get = await fetch((await start('    enabled: true\n')).gw.url + '/api/v1/keys/claim');
    expect(get.status).toBe(405);
  });

  it('one working key per identity: a second claim is 409 key_exists and does not count against the address', async () => {
    const { claim } = await start('    enabled: true\n    perIpPerDay: 2\n');
    expect((await claim({ acceptTerms: true, identity: 'alice' })).status).toBe(201);
    const again = await claim({ acceptTerms: true, identity: 'alice' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('key_exists');
    // One identity however it is typed.
    expect((await claim({ acceptTerms: true, identity: ' ALICE ' })).status).toBe(409);
    // The refused claims took nothing from the address's 2.
    expect((await claim({ acceptTerms: true, identity: 'bob' })).status).toBe(201);
    const third = await claim({ acceptTerms: true, identity: 'carol' });
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(86_000);
    const body = (await third.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('rate_limit_exceeded');
    expect(body.error.message).toContain('at most 2 in 24 hours');
  });

  it('per address: X-Forwarded-For is believed only from trusted proxies', async () => {
    // The test client connects from 127.0.0.1, a trusted (loopback) proxy by default.
    const trusted = await start('    enabled: true\n    perIpPerDay: 1\n');
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    expect((await trusted.claim({ acceptTerms: true }, from('203.0.113.1'))).status).toBe(201);
    expect((await trusted.claim({ acceptTerms: true }, from('203.0.113.2'))).status).toBe(201);
    expect((await trusted.claim({ acceptTerms: true }, from('203.0.113.1'))).status).toBe(429);

    const untrusting = await start('    enabled: true\n    perIpPerDay: 1\n', { TRUST_PROXY: 'false' });
    expect((await untrusting.claim({ acceptTerms: true }, from('203.0.113.1'))).status).toBe(201);
    // A spoofed header does not make a new address.
    expect((await untrusting.claim({ acceptTerms: true }, from('203.0.113.2'))).status).toBe(429);
  });

  it('captcha: the token goes to the verify URL as a form with the secret; failures are 403, outages 503', async () => {
    const verifier = await fakeVerifier(bed, (form) =>
      form.get('response') === 'down' ? 'down' : { success: form.get('response') === 'good-token' },
    );
    const { claim } = await start(
      `    enabled: true\n    perIpPerDay: 10\n    captcha:\n      verifyUrl: ${verifier.url}\n      secret: captcha-secret\n`,
    );
    const missing = await claim({ acceptTerms: true });
    expect(missing.status).toBe(403);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('captcha_failed');
    const bad = await claim({ acceptTerms: true }, { 'x-captcha-token': 'bad-token' });
    expect(bad.status).toBe(403);
    const down = await claim({ acceptTerms: true }, { 'x-captcha-token': 'down' });
    expect(down.status).toBe(503);
    expect(((await down.json()) as { error: { code: string } }).error.code).toBe('captcha_unavailable');
    const good = await claim({ acceptTerms: true }, { 'x-captcha-token': 'good-token' });
    expect(good.status).toBe(201);
    // Failed captchas took nothing from the address's 10.
    for (let i = 0; i < 9; i++)
      expect((await claim({ acceptTerms: true }, { 'x-captcha-token': 'good-token' })).status).toBe(201);
    const asked = verifier.seen.length;
    // A refused address does not use up a captcha token: the verifier is not asked.
    expect((await claim({ acceptTerms: true }, { 'x-captcha-token': 'good-token' })).status).toBe(429);
    expect(verifier.seen).toHaveLength(asked);
    const last = verifier.seen[3]!;
    expect(Object.fromEntries(last)).toEqual({
      secret: 'captcha-secret',
      response: 'good-token',
      remoteip: '127.0.0.1',
    });
  });

  it('a claimed key expires: 401 saying when', async () => {
    let now = Date.parse('2026-12-05T00:00:00Z');
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const dir = await bed.tempDir('gw-claim-');
    await writeFile(`${dir}/gateway.yaml`, 'keys:\n  claim:\n    enabled: true\n    expiresIn: 12h\n');
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url }],
      env: { CONFIG_FILE: `${dir}/gateway.yaml` },
      now: () => now,
    });
    const res = await fetch(`${gw.url}/api/v1/keys/claim`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ acceptTerms: true, identity: 'x' }),
    });
    const { key, expiresAt } = (await res.json()) as { key: string; expiresAt: string };
    expect(expiresAt).toBe('2026-12-05T12:00:00.000Z');
    now = Date.parse('2026-12-05T12:00:00Z');
    const models = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(models.status).toBe(401);
    expect(((await models.json()) as { error: { message: string } }).error.message).toContain(
      'expired on 2026-12-05T12:00:00.000Z',
    );
    // Expired: the identity may claim again.
    const again = await fetch(`${gw.url}/api/v1/keys/claim`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ acceptTerms: true, identity: 'x' }),
    });
    expect(again.status).toBe(201);
  });
});
