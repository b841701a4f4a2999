import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();
const agent = new Agent({ connections: 1 });
afterEach(() => agent.close().catch(() => undefined));

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
  it('a completion (JSON and streamed, several on one connection) adds no property after Express takes the request', async () => {
    const a = await bed.upstream('a');
    const gw = await bed.gateway({ endpoints: [{ url: a.url, name: 'a', models: ['test-model'] }] });
    const added = recordAddedKeys(gw.gateway.app as never);
    for (const stream of [false, true, false, true]) {
      const res = await request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        headers: { ...gw.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test-model', stream, messages: [{ role: 'user', content: 'hi' }] }),
      });
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
    await expect.poll(() => added.length).toBe(4);
    expect(added).toEqual(Array.from({ length: 4 }, () => ({ req: [], res: [] })));
  });
});
