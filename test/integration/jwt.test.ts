import { exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { loadConfig, type ConfigError } from '../../src/config/load-config.js';
import { gatewayEnv } from '../helpers/start-gateway.js';
import { useTestBed, type TestBed } from '../helpers/test-bed.js';

const SECRET = 'a-jwt-secret-of-the-operator-0123456789';
const ADMIN = 'admin-key-for-jwt-tests-0123456789';
const NOW_S = () => Math.floor(Date.now() / 1000);

function hs256(claims: JWTPayload, secret = SECRET, header: Record<string, string> = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', ...header })
    .sign(Buffer.from(secret, 'utf8'));
}

async function start(bed: TestBed, env: Record<string, string>) {
  const upstream = await bed.upstream({ name: 'gpu', models: ['llama', 'qwen'] });
  upstream.defaultBehavior = { type: 'answer', text: 'hello from the upstream' };
  const gw = await bed.gateway({
    endpoints: [{ url: upstream.url, name: 'gpu' }],
    env: { ADMIN_API_KEY: ADMIN, ...env },
  });
  const sdk = (token: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: token, maxRetries: 0 });
  const refusal = async (token: string) => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { error: { message: string; code: string } };
    return { status: res.status, ...body.error };
  };
  return { gw, upstream, sdk, refusal };
}

describe('JWT client credentials', () => {
  const bed = useTestBed();

  it('HS256: the subject is the usage identity; team and models claims apply like a key’s', async () => {
    const { gw, sdk } = await start(bed, { JWT_SECRET: SECRET });
    // A team with a limit and a model list, made through the admin API.
    const team = await fetch(`${gw.url}/api/v1/teams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'research', limits: { rpm: 2 }, models: ['llama', 'qwen'] }),
    });
    expect(team.status).toBe(201);

    const alice = sdk(await hs256({ sub: 'alice', exp: NOW_S() + 600 }));
    const answer = await alice.chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]!.message.content).toBe('hello from the upstream');

    // `models`: only llama; /v1/models lists it alone, qwen is a 403.
    const bob = sdk(await hs256({ sub: 'bob', team: 'research', models: ['llama'], exp: NOW_S() + 600 }));
    expect((await bob.models.list()).data.map((m) => m.id)).toEqual(['llama']);
    const denied = await bob.chat.completions
      .create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(denied).toMatchObject({ status: 403, code: 'model_not_allowed' });
    expect((denied as Error).message).toContain('This token may not use the model');

    // The team's rpm of 2 is shared by every token of the team.
    const carol = sdk(await hs256({ sub: 'carol', team: 'research', exp: NOW_S() + 600 }));
    await bob.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: '1' }] });
    await carol.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: '2' }] });
    const limited = await carol.chat.completions
      .create({ model: 'llama', messages: [{ role: 'user', content: '3' }] })
      .catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(limited).toMatchObject({ status: 429 });
    expect((limited as Error).message).toContain("team 'research'");

    // A change to the team applies to tokens verified before it (no new token needed).
    const patched = await fetch(`${gw.url}/api/v1/teams/research`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ models: ['qwen'] }),
    });
    expect(patched.status).toBe(200);
    await gw.gateway.keys.poll();
    expect((await carol.models.list()).data.map((m) => m.id)).toEqual(['qwen']);

    // The ledger has each subject as its user and key id.
    const usage = (await (
      await fetch(`${gw.url}/api/v1/usage?group_by=user`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { data: Array<{ user: string; requests: number }> };
    expect(Object.fromEntries(usage.data.map((r) => [r.user, r.requests]))).toEqual({
      alice: 1,
      bob: 2,
      carol: 2,
    });
    const own = (await (
      await fetch(`${gw.url}/v1/usage`, {
        headers: { authorization: `Bearer ${await hs256({ sub: 'alice', exp: NOW_S() + 60 })}` },
      })
    ).json()) as { total_requests: number };
    expect(own.total_requests).toBe(1);
  });

  it('refuses expired, not-yet-valid, unsigned, badly signed or exp-less tokens with a 401 that says why', async () => {
    const { refusal, gw } = await start(bed, {
      JWT_SECRET: SECRET,
      JWT_ISSUER: 'https://auth.example',
      JWT_AUDIENCE: 'gateway',
    });
    const good = { sub: 'alice', iss: 'https://auth.example', aud: 'gateway' };
    const cases: Array<[string, Promise<string> | string, RegExp]> = [
      ['expired', hs256({ ...good, exp: NOW_S() - 120 }), /expired at \d{4}-/],
      ['within the 30 s skew', hs256({ ...good, exp: NOW_S() - 10 }), /^ok$/],
      ['not valid yet', hs256({ ...good, exp: NOW_S() + 600, nbf: NOW_S() + 120 }), /not valid yet/],
      ['no exp', hs256(good), /no 'exp' claim/],
      [
        'other secret',
        hs256({ ...good, exp: NOW_S() + 600 }, 'another-secret-entirely-0123456789'),
        /signature does not verify/,
      ],
      ['wrong issuer', hs256({ ...good, iss: 'https://evil.example', exp: NOW_S() + 600 }), /issuer/],
      ['wrong audience', hs256({ ...good, aud: 'other', exp: NOW_S() + 600 }), /audience/],
      ['no sub', hs256({ iss: good.iss, aud: good.aud, exp: NOW_S() + 600 }), /no 'sub' claim/],
      [
        'alg none',
        `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...good, exp: NOW_S() + 600 })).toString('base64url')}.`,
        /algorithm/,
      ],
      ['garbage', 'eyJhbGciOiJIUzI1NiJ9.not-json.x', /not a valid JWT/],
    ];
    for (const [what, token, expected] of cases) {
      const r = await refusal(await token);
      if (expected.source === '^ok$') {
        expect(r.status, what).toBe(200);
        continue;
      }
      expect(r.status, what).toBe(401);
      expect(r.code, what).toBe('invalid_api_key');
      expect(r.message, what).toMatch(expected);
      expect(r.message, what).not.toContain(SECRET);
    }
    // The access lines tell the operator why each was refused (the client's code is the same).
    await new Promise((r) => setImmediate(r));
    const reasons = (gw.logs as Array<{ res?: { statusCode: number }; authFailure?: string }>)
      .filter((l) => l.res?.statusCode === 401)
      .map((l) => l.authFailure);
    expect(reasons).toEqual([
      'jwt_expired',
      'jwt_not_yet_valid',
      'jwt_claims',
      'jwt_signature',
      'jwt_claims',
      'jwt_claims',
      'jwt_claims',
      'jwt_algorithm',
      'jwt_invalid',
    ]);
  });

  it.each(['RS256', 'ES256'] as const)(
    '%s with JWT_PUBLIC_KEY; an HS256 token is then refused',
    async (alg) => {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const pem = await exportSPKI(publicKey);
      // As a one-line env value: line breaks written as \n.
      const { sdk, refusal } = await start(bed, { JWT_PUBLIC_KEY: pem.replace(/\n/g, '\\n') });
      const token = await new SignJWT({ sub: 'svc', exp: NOW_S() + 600 })
        .setProtectedHeader({ alg })
        .sign(privateKey);
      const answer = await sdk(token).chat.completions.create({
        model: 'llama',
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(answer.choices[0]!.message.content).toBe('hello from the upstream');
      // An HS256 token signed with the public key's text as its secret (the classic confusion attack).
      const forged = await hs256({ sub: 'svc', exp: NOW_S() + 600 }, pem);
      const r = await refusal(forged);
      expect(r.status).toBe(401);
      expect(r.message).toContain(`it takes ${alg} tokens`);
    },
  );

  it('a JWT-only gateway needs no API_KEY; both JWT settings at once, or a bad public key, stop the start', () => {
    const { API_KEY: _key, ...env } = gatewayEnv([{ url: 'http://127.0.0.1:1', name: 'gpu' }]);
    expect(loadConfig({ env: { ...env, JWT_SECRET: SECRET } }).auth.jwt.secret).toBe(SECRET);
    const problems = (extra: Record<string, string>) => {
      try {
        loadConfig({ env: { ...env, ...extra } });
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({})).toEqual([expect.stringContaining('JWT_SECRET or JWT_PUBLIC_KEY')]);
    expect(problems({ JWT_SECRET: SECRET, JWT_PUBLIC_KEY: 'x' }).join('\n')).toContain(
      'JWT_SECRET and JWT_PUBLIC_KEY are both set',
    );
    expect(problems({ JWT_PUBLIC_KEY: 'not a key' }).join('\n')).toContain('is not a PEM public key');
  });

  it('without JWT settings a token is an unknown key, and the config view redacts the secret', async () => {
    const { refusal } = await start(bed, {});
    const r = await refusal(await hs256({ sub: 'alice', exp: NOW_S() + 600 }));
    expect(r).toMatchObject({ status: 401, message: 'Incorrect API key provided.' });
    const { gw } = await start(bed, { JWT_SECRET: SECRET });
    const view = await (
      await fetch(`${gw.url}/api/v1/config`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    expect(view).not.toContain(SECRET);
    expect(gw.rawLogs()).not.toContain(SECRET);
  });
});
