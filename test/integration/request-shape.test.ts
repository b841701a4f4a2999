import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

/**
 * Every property added to a request or response after Express has changed its prototype costs a new
 * hidden class per request (see src/http/request-shape.ts). This records, for each request, the own
 * properties added after Express took the objects.
 */
function recordAddedKeys(app: { handle: (...args: unknown[]) => unknown }) {
  const added: Array<{ req: string[]; res: string[] }> = [];
  const handle = app.handle;
  app.handle = function (this: unknown, req: IncomingMessage, res: ServerResponse, next: unknown) {
    const reqBefore = new Set(Reflect.ownKeys(req));
    const resBefore = new Set(Reflect.ownKeys(res));
    res.once('close', () =>
      setImmediate(() =>
        added.push({
          req: Reflect.ownKeys(req)
            .filter((k) => !reqBefore.has(k))
            .map(String),
          res: Reflect.ownKeys(res)
            .filter((k) => !resBefore.has(k))
            .map(String),
        }),
      ),
    );
    return handle.call(this, req, res, next);
  } as typeof app.handle;
  return added;
}

describe('request and response shapes', () => {
  it('no request adds a property after Express takes it: completions, errors, other routes', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({
      endpoints: [{ url: a.url, name: 'a', models: ['test-model'] }],
      env: { ADMIN_API_KEY: 'admin-key-0123456789', MAX_ATTEMPTS: '2' },
    });
    const added = recordAddedKeys(gw.gateway.app as never);
    // One keep-alive connection for all: later requests reuse what earlier ones left on the socket.
    const agent = new Agent({ connections: 1 });
    bed.onCleanup(() => agent.close());
    const json = { ...gw.auth, 'content-type': 'application/json' };
    const completion = (stream: boolean, model = 'test-model') =>
      JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] });
    a.script({ type: 'status', status: 500 }, { type: 'status', status: 500 });
    const requests: Array<[string, string, Record<string, string>, string | undefined, number]> = [
      ['POST', '/v1/chat/completions', json, completion(false), 502],
      ['POST', '/v1/chat/completions', json, completion(false), 200],
      ['POST', '/v1/chat/completions', json, completion(true), 200],
      ['POST', '/v1/chat/completions', json, completion(false), 200],
      ['POST', '/v1/chat/completions', json, completion(true), 200],
      ['POST', '/v1/chat/completions', { 'content-type': 'application/json' }, completion(false), 401],
      ['POST', '/v1/chat/completions', json, '{not json', 400],
      ['POST', '/v1/chat/completions', json, completion(false, 'no-such-model'), 404],
      ['GET', '/v1/chat/completions', gw.auth, undefined, 405],
      ['GET', '/v1/models', gw.auth, undefined, 200],
      ['GET', '/v1/models/test-model', gw.auth, undefined, 200],
      ['GET', '/v1/nowhere', gw.auth, undefined, 404],
      ['GET', '/health', {}, undefined, 200],
      ['GET', '/api/v1/providers/status', { authorization: 'Bearer admin-key-0123456789' }, undefined, 200],
    ];
    for (const [method, path, headers, body, status] of requests) {
      const res = await request(`${gw.url}${path}`, { method, dispatcher: agent, headers, body });
      await res.body.text();
      expect([method, path, res.statusCode]).toEqual([method, path, status]);
    }
    await expect.poll(() => added.length).toBe(requests.length);
    expect(added).toEqual(requests.map(() => ({ req: [], res: [] })));
  });
});
