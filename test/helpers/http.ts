import { request } from 'undici';

export interface ChatOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** POST /v1/chat/completions and read the whole answer. */
export async function chat(
  gatewayUrl: string,
  auth: Record<string, string>,
  options: ChatOptions = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}> {
  const res = await request(`${gatewayUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth, ...options.headers },
    body: JSON.stringify(
      options.body ?? { model: 'test-model', messages: [{ role: 'user', content: 'hi' }] },
    ),
    signal: options.signal,
  });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .map((block) =>
      block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n'),
    )
    .filter((d) => d !== '');
}

/** The assistant text of a streamed answer. */
export function streamedText(text: string): string {
  return sseData(text)
    .filter((d) => d !== '[DONE]')
    .map((d) => JSON.parse(d) as { choices?: Array<{ delta?: { content?: string } }> })
    .map((c) => c.choices?.[0]?.delta?.content ?? '')
    .join('');
}

export const streamBody = (extra: Record<string, unknown> = {}) => ({
  model: 'test-model',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
  ...extra,
});
