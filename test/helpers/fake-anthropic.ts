import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>;

/** What the fake does with the next request. */
export type AnthropicBehavior =
  | { type: 'text'; text: string; stop?: string; delayMs?: number }
  | { type: 'tool'; name: string; input: Json; text?: string }
  | { type: 'status'; status: number; errorType: string; message: string }
  /** A stream that stops after its first text delta (the connection is cut). */
  | { type: 'cut'; text: string };

export const ANTHROPIC_KEY = 'sk-ant-upstream-secret-0123456789';

/**
 * A fake of Anthropic's Messages API that checks requests the way the real one does (key, version,
 * body shape: alternating roles starting with the user, typed content blocks, max_tokens, tool
 * schemas) and answers with the documented JSON and event sequences (message_start, content blocks,
 * ping, message_delta, message_stop).
 */
export class FakeAnthropic {
  readonly requests: Array<{ path: string; headers: http.IncomingHttpHeaders; json: Json }> = [];
  readonly script: AnthropicBehavior[] = [];
  defaultBehavior: AnthropicBehavior = { type: 'text', text: 'Hello from Claude.' };
  models = ['claude-test'];
  private server!: http.Server;
  url = '';

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private error(res: http.ServerResponse, status: number, type: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_fake' });
    res.end(JSON.stringify({ type: 'error', error: { type, message } }));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    // The key as x-api-key (the API's documented header) or a bearer token (newer SDKs send that).
    const key = req.headers['x-api-key'] ?? req.headers.authorization?.replace(/^Bearer /, '');
    if (key !== ANTHROPIC_KEY) return this.error(res, 401, 'authentication_error', 'invalid x-api-key');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(String(req.headers['anthropic-version'] ?? '')))
      return this.error(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          data: this.models.map((id) => ({
            type: 'model',
            id,
            display_name: id,
            created_at: '2025-01-01T00:00:00Z',
          })),
          has_more: false,
          first_id: this.models[0],
          last_id: this.models[this.models.length - 1],
        }),
      );
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/messages')
      return this.error(res, 404, 'not_found_error', `no route ${req.method} ${req.url}`);
    let json: Json;
    try {
      json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
    } catch {
      return this.error(res, 400, 'invalid_request_error', 'body is not JSON');
    }
    this.requests.push({ path: req.url, headers: req.headers, json });
    const problem = invalid(json);
    if (problem) return this.error(res, 400, 'invalid_request_error', problem);
    const behavior = this.script.shift() ?? this.defaultBehavior;
    if (behavior.type === 'text' && behavior.delayMs)
      await new Promise((r) => setTimeout(r, behavior.delayMs));
    if (behavior.type === 'status')
      return this.error(res, behavior.status, behavior.errorType, behavior.message);
    const message = {
      id: `msg_${this.requests.length}`,
      type: 'message',
      role: 'assistant',
      model: json.model,
      content: [] as Json[],
      stop_reason: null as string | null,
      stop_sequence: null,
      usage: { input_tokens: 12, output_tokens: 0, cache_read_input_tokens: 3 },
    };
    const text = behavior.type === 'tool' ? (behavior.text ?? '') : behavior.text;
    if (!json.stream) {
      if (text) message.content.push({ type: 'text', text });
      if (behavior.type === 'tool')
        message.content.push({
          type: 'tool_use',
          id: 'toolu_01',
          name: behavior.name,
          input: behavior.input,
        });
      message.stop_reason =
        behavior.type === 'tool'
          ? 'tool_use'
          : behavior.type === 'text'
            ? (behavior.stop ?? 'end_turn')
            : 'end_turn';
      message.usage.output_tokens = 7;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(message));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (event: string, data: Json) =>
      res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
    send('message_start', { message: { ...message, usage: { ...message.usage, output_tokens: 1 } } });
    let index = 0;
    if (text) {
      send('content_block_start', { index, content_block: { type: 'text', text: '' } });
      send('ping', {});
      const words = text.split(/(?<= )/);
      for (const [i, w] of words.entries()) {
        send('content_block_delta', { index, delta: { type: 'text_delta', text: w } });
        if (behavior.type === 'cut' && i === 0) {
          // Cut once what was written has left (a reset mid-answer, not before it).
          res.write('', () => res.socket?.destroy());
          return;
        }
      }
      send('content_block_stop', { index });
      index++;
    }
    if (behavior.type === 'tool') {
      send('content_block_start', {
        index,
        content_block: { type: 'tool_use', id: 'toolu_01', name: behavior.name, input: {} },
      });
      const args = JSON.stringify(behavior.input);
      const half = Math.floor(args.length / 2);
      send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
      send('content_block_delta', {
        index,
        delta: { type: 'input_json_delta', partial_json: args.slice(0, half) },
      });
      send('content_block_delta', {
        index,
        delta: { type: 'input_json_delta', partial_json: args.slice(half) },
      });
      send('content_block_stop', { index });
    }
    send('message_delta', {
      delta: {
        stop_reason:
          behavior.type === 'tool'
            ? 'tool_use'
            : behavior.type === 'text'
              ? (behavior.stop ?? 'end_turn')
              : 'end_turn',
        stop_sequence: null,
      },
      usage: { output_tokens: 7 },
    });
    send('message_stop', {});
    res.end();
  }
}

/** What the real API would refuse in a Messages request, in its words; undefined if nothing. */
function invalid(json: Json): string | undefined {
  if (typeof json.model !== 'string' || json.model === '') return 'model: Field required';
  if (!Number.isInteger(json.max_tokens) || json.max_tokens < 1) return 'max_tokens: Field required';
  if (!Array.isArray(json.messages) || json.messages.length === 0)
    return 'messages: at least one message is required';
  if (json.system !== undefined && typeof json.system !== 'string' && !Array.isArray(json.system))
    return 'system: must be a string or blocks';
  if (json.temperature !== undefined && (json.temperature < 0 || json.temperature > 1))
    return 'temperature: Input should be less than or equal to 1';
  let previous = '';
  for (const [i, m] of (json.messages as Json[]).entries()) {
    if (m.role !== 'user' && m.role !== 'assistant')
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i === 0 && m.role !== 'user') return 'messages: first message must use the "user" role';
    if (m.role === previous) return 'messages: roles must alternate between "user" and "assistant"';
    previous = m.role;
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    if (!Array.isArray(blocks) || blocks.length === 0) return `messages.${i}.content: must not be empty`;
    for (const b of blocks as Json[]) {
      if (!['text', 'image', 'tool_use', 'tool_result'].includes(b.type))
        return `messages.${i}.content: unknown block type ${b.type}`;
      if (b.type === 'text' && (typeof b.text !== 'string' || b.text === ''))
        return `messages.${i}.content: text blocks must be non-empty`;
      if (
        b.type === 'tool_use' &&
        (typeof b.id !== 'string' || typeof b.name !== 'string' || typeof b.input !== 'object')
      )
        return `messages.${i}.content: bad tool_use`;
      if (b.type === 'tool_result' && (typeof b.tool_use_id !== 'string' || m.role !== 'user'))
        return `messages.${i}.content: bad tool_result`;
    }
  }
  const last = (json.messages as Json[])[json.messages.length - 1];
  if (last?.role === 'assistant') {
    const blocks = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : last.content;
    const tail = blocks[blocks.length - 1];
    if (tail.type === 'text' && /\s$/.test(tail.text))
      return 'final assistant content cannot end with trailing whitespace';
  }
  for (const t of (json.tools ?? []) as Json[])
    if (typeof t.name !== 'string' || typeof t.input_schema !== 'object')
      return 'tools: each tool needs name and input_schema';
  return undefined;
}
