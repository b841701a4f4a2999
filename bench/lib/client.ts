import { Agent, request } from 'undici';

export interface Timing {
  ok: boolean;
  /** Request sent to first body byte. */
  ttfbMs: number;
  totalMs: number;
  endpoint: string;
}

const agent = new Agent({ connections: 512, keepAliveTimeout: 60_000 });

/** One chat completion through the gateway, timed; streams are read to the end. */
export async function timedChat(url: string, key: string, stream: boolean): Promise<Timing> {
  const started = performance.now();
  try {
    const res = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bench-model', stream, messages: [{ role: 'user', content: 'hi' }] }),
    });
    let ttfbMs = -1;
    let text = '';
    for await (const chunk of res.body) {
      if (ttfbMs < 0) ttfbMs = performance.now() - started;
      text += (chunk as Buffer).toString('utf8');
    }
    const ok = res.statusCode === 200 && (!stream || text.trimEnd().endsWith('data: [DONE]'));
    return {
      ok,
      ttfbMs,
      totalMs: performance.now() - started,
      endpoint: String(res.headers['x-gateway-endpoint'] ?? ''),
    };
  } catch {
    return { ok: false, ttfbMs: -1, totalMs: performance.now() - started, endpoint: '' };
  }
}

/** Closed loop: `concurrency` workers each send requests back to back until `total` are done. */
export async function closedLoop(
  total: number,
  concurrency: number,
  send: () => Promise<Timing>,
): Promise<Timing[]> {
  const results: Timing[] = [];
  let started = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      results.push(await send());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

export async function closeClient(): Promise<void> {
  await agent.close();
}
