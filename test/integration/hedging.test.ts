import { describe, expect, it, vi } from 'vitest';
import { TtfbStats } from '../../src/services/completion/ttfb-stats.js';
import type { Behavior } from '../helpers/fake-upstream.js';
import { chat, streamBody, streamedText } from '../helpers/http.js';
import { useTestBed } from '../helpers/test-bed.js';

const bed = useTestBed();

async function pair(
  primary: Behavior,
  rival: Behavior,
  env: Record<string, string> = { HEDGE_DELAY_MS: '100', HEDGE_MODELS: 'test-model' },
) {
  const a = await bed.upstream('primary', primary);
  const b = await bed.upstream('rival', rival);
  const gw = await bed.gateway({
    endpoints: [
      { url: a.url, name: 'primary', priority: 1 },
      { url: b.url, name: 'rival', priority: 2 },
    ],
    env,
  });
  return { a, b, gw };
}

describe('request hedging', () => {
  it('a slow first token gets a rival after the hedge delay; the rival wins and the loser is aborted at once', async () => {
    const { a, b, gw } = await pair(
      { type: 'sse', text: 'slow answer', firstDelayMs: 1500 },
      { type: 'sse', text: 'fast answer' },
    );
    const started = Date.now();
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    const elapsed = Date.now() - started;
    expect(streamedText(res.text)).toBe('fast answer');
    expect(res.headers['x-gateway-endpoint']).toBe('rival');
    expect(res.headers['x-gateway-attempts']).toBe('2');
    expect(elapsed).toBeLessThan(1000);
    const closedAt = await a.requests[0]!.closed;
    expect(closedAt - started).toBeLessThan(1000);
    expect(b.requests).toHaveLength(1);
    // Losing a race says nothing bad about an endpoint.
    expect(gw.gateway.registry.health.get('primary').consecutiveFailures).toBe(0);
    expect(gw.gateway.registry.health.get('primary').inFlight).toBe(0);
  });

  it('the primary can still win the race: then the rival is the one aborted', async () => {
    const { a, b, gw } = await pair(
      { type: 'sse', text: 'primary answer', firstDelayMs: 200 },
      { type: 'sse', text: 'rival answer', firstDelayMs: 1500 },
    );
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('primary answer');
    expect(res.headers['x-gateway-endpoint']).toBe('primary');
    await b.requests[0]!.closed;
    expect(a.requests).toHaveLength(1);
  });

  it('works for JSON answers too', async () => {
    const { gw } = await pair(
      { type: 'answer', delayMs: 1500, text: 'slow' },
      { type: 'answer', text: 'fast' },
    );
    const res = await chat(gw.url, gw.auth);
    expect(res.json.choices[0].message.content).toBe('fast');
  });

  it('no rival when the first byte comes within the delay', async () => {
    const { a, b, gw } = await pair({ type: 'sse', text: 'quick' }, { type: 'sse', text: 'unused' });
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('quick');
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(0);
  });

  it('only for the models it is turned on for', async () => {
    const { b, gw } = await pair(
      { type: 'sse', text: 'slow but alone', firstDelayMs: 300 },
      { type: 'sse', text: 'unused' },
      { HEDGE_DELAY_MS: '50', HEDGE_MODELS: 'other-model' },
    );
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('slow but alone');
    expect(b.requests).toHaveLength(0);
  });

  it('if the primary fails while the rival runs, the rival still answers', async () => {
    const { gw } = await pair(
      { type: 'custom', handle: (req) => setTimeout(() => req.socket.destroy(), 200) },
      { type: 'sse', text: 'rival saves the day', firstDelayMs: 300 },
    );
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('rival saves the day');
  });
});

describe('TtfbStats (hedge delay p95)', () => {
  it('gives no p95 before enough samples, then the 95th percentile of the recent window', () => {
    const stats = new TtfbStats(100, 20);
    for (let i = 1; i <= 19; i++) stats.record('m', i);
    expect(stats.p95('m')).toBeUndefined();
    for (let i = 20; i <= 100; i++) stats.record('m', i);
    expect(stats.p95('m')).toBe(95);
    for (let i = 0; i < 100; i++) stats.record('m', 5);
    expect(stats.p95('m')).toBe(5);
    expect(stats.p95('other')).toBeUndefined();
  });
});

describe('hedging bookkeeping', () => {
  it('a delay without HEDGE_MODELS hedges every model', async () => {
    const { b, gw } = await pair(
      { type: 'sse', text: 'slow', firstDelayMs: 1500 },
      { type: 'sse', text: 'fast' },
      { HEDGE_DELAY_MS: '100' },
    );
    const res = await chat(gw.url, gw.auth, { body: streamBody() });
    expect(streamedText(res.text)).toBe('fast');
    expect(b.requests).toHaveLength(1);
  });

  it('a client that leaves a hedged stream leaves no request counted in flight on either endpoint', async () => {
    const { a, b, gw } = await pair(
      { type: 'sse', text: 'slow', firstDelayMs: 1500 },
      { type: 'sse', text: 'a b c d e f g h i j k l m n o p', delayMs: 50 },
    );
    const controller = new AbortController();
    const pending = chat(gw.url, gw.auth, { body: streamBody(), signal: controller.signal }).catch(
      () => undefined,
    );
    await b.waitForRequest(1);
    await a.requests[0]!.closed;
    controller.abort();
    await pending;
    await vi.waitFor(() => expect(gw.gateway.completions.active).toBe(0), { timeout: 2000, interval: 5 });
    expect(gw.gateway.registry.health.get('primary').inFlight).toBe(0);
    expect(gw.gateway.registry.health.get('rival').inFlight).toBe(0);
  });
});
