import { ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS } from '../../config/providers.js';
import { SseParser } from '../streaming/sse-parser.js';
import {
  chunkEvent,
  DONE_EVENT,
  dataUrl,
  jsonObject,
  parseArguments,
  stopsOf,
  str,
  textOf,
  wantsUsage,
  type AnswerTranslation,
  type Provider,
  type TranslateInput,
} from './provider.js';

type Json = Record<string, unknown>;

const CHAT = '/v1/chat/completions';

/**
 * Anthropic's Messages API (`{url}/v1/messages`, `x-api-key`, `anthropic-version`): OpenAI chat requests
 * are translated to it, and its answers, stream events, tool calls, usage, stop reasons back. A
 * trailing assistant message is Anthropic's prefill, so streams can be continued on its endpoints.
 */
export function anthropic(): Provider {
  return {
    name: 'anthropic',
    serves: (path) => path === CHAT,
    continues: true,
    credentials: (endpoint) => ({
      ...(endpoint.apiKey ? { 'x-api-key': endpoint.apiKey } : {}),
      'anthropic-version': endpoint.apiVersion ?? ANTHROPIC_VERSION,
    }),
    models: {
      path: '/v1/models',
      items: (json) => {
        const data = (json as { data?: unknown } | null)?.data;
        return Array.isArray(data) ? data : undefined;
      },
    },
    translate: (input) => ({
      call: { path: '/v1/messages', body: Buffer.from(JSON.stringify(anthropicRequest(input))) },
      answer: new AnthropicAnswer(input),
    }),
  };
}

// ---- the request ----

/** OpenAI's chat request as Anthropic's. */
export function anthropicRequest(input: TranslateInput): Json {
  const { json, endpoint } = input;
  const system: string[] = [];
  const messages: Array<{ role: 'user' | 'assistant'; content: Json[] }> = [];
  const push = (role: 'user' | 'assistant', blocks: Json[]) => {
    if (blocks.length === 0) return;
    const last = messages[messages.length - 1];
    // Anthropic wants user and assistant turns to alternate: consecutive ones are merged.
    if (last?.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const m of (Array.isArray(json.messages) ? json.messages : []) as Json[]) {
    if (m === null || typeof m !== 'object') continue;
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(textOf(m.content));
        break;
      case 'user':
        push('user', userBlocks(m.content));
        break;
      case 'assistant': {
        const blocks: Json[] = [];
        const text = textOf(m.content);
        if (text !== '') blocks.push({ type: 'text', text });
        for (const call of (Array.isArray(m.tool_calls) ? m.tool_calls : []) as Json[]) {
          const fn = (call.function ?? {}) as Json;
          blocks.push({
            type: 'tool_use',
            id: str(call.id),
            name: str(fn.name),
            input: parseArguments(fn.arguments),
          });
        }
        push('assistant', blocks);
        break;
      }
      case 'tool':
      case 'function':
        push('user', [
          {
            type: 'tool_result',
            tool_use_id: str(m.tool_call_id ?? m.name),
            content: textOf(m.content),
          },
        ]);
        break;
    }
  }
  // A trailing assistant turn is a prefill: Anthropic refuses one that ends in whitespace.
  const last = messages[messages.length - 1];
  const tail = last?.role === 'assistant' ? last.content[last.content.length - 1] : undefined;
  if (tail?.type === 'text') tail.text = str(tail.text).trimEnd();
  const max = json.max_completion_tokens ?? json.max_tokens;
  const out: Json = {
    model: input.model,
    max_tokens:
      typeof max === 'number' && max > 0
        ? Math.floor(max)
        : (endpoint.defaultMaxTokens ?? DEFAULT_MAX_TOKENS),
    messages,
  };
  if (system.length > 0) out.system = system.join('\n\n');
  if (typeof json.temperature === 'number') out.temperature = clamp(json.temperature, 0, 1);
  if (typeof json.top_p === 'number') out.top_p = clamp(json.top_p, 0, 1);
  if (typeof json.top_k === 'number') out.top_k = Math.max(0, Math.floor(json.top_k));
  const stop = stopsOf(json);
  if (stop.length > 0) out.stop_sequences = stop.filter((s) => s.trim() !== '');
  if (typeof json.user === 'string') out.metadata = { user_id: json.user };
  if (Array.isArray(json.tools) && json.tools.length > 0) {
    out.tools = (json.tools as Json[]).map((t) => {
      const fn = (t.function ?? {}) as Json;
      return {
        name: fn.name,
        ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
        input_schema: fn.parameters ?? { type: 'object', properties: {} },
      };
    });
    const choice = toolChoice(json.tool_choice, json.parallel_tool_calls);
    if (choice) out.tool_choice = choice;
  }
  if (input.stream) out.stream = true;
  return out;
}

/** Sampling values outside Anthropic's ranges (temperature 0–1 where OpenAI's goes to 2) are clamped. */
function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}

function toolChoice(choice: unknown, parallel: unknown): Json | undefined {
  const noParallel = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any', ...noParallel };
  if (choice && typeof choice === 'object') {
    const name = ((choice as Json).function as Json | undefined)?.name;
    if (typeof name === 'string') return { type: 'tool', name, ...noParallel };
  }
  return choice === 'auto' || parallel === false ? { type: 'auto', ...noParallel } : undefined;
}

function userBlocks(content: unknown): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const blocks: Json[] = [];
  for (const part of content as Json[]) {
    if (part?.type === 'text' && typeof part.text === 'string')
      blocks.push({ type: 'text', text: part.text });
    else if (part?.type === 'image_url') {
      const url = str(((part.image_url ?? {}) as Json).url);
      const data = dataUrl(url);
      blocks.push(
        data
          ? { type: 'image', source: { type: 'base64', media_type: data.mediaType, data: data.data } }
          : { type: 'image', source: { type: 'url', url } },
      );
    }
  }
  return blocks;
}

// ---- the answer ----

const FINISH: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

function finishReason(stop: unknown): string {
  return (typeof stop === 'string' && FINISH[stop]) || 'stop';
}

/** Anthropic's usage as OpenAI's: cached input counts as prompt tokens too. */
function usageOf(u: Json | undefined, outputTokens?: number): Json {
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  const prompt = n(u?.input_tokens) + n(u?.cache_creation_input_tokens) + n(u?.cache_read_input_tokens);
  const completion = outputTokens ?? n(u?.output_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    ...(n(u?.cache_read_input_tokens) > 0
      ? { prompt_tokens_details: { cached_tokens: n(u?.cache_read_input_tokens) } }
      : {}),
  };
}

class AnthropicAnswer implements AnswerTranslation {
  private readonly parser = new SseParser();
  private id = '';
  private readonly created: number;
  private usage: Json | undefined;
  private outputTokens = 0;
  /** Anthropic's content block index -> the OpenAI tool call index (tool_use blocks only). */
  private readonly tools = new Map<number, number>();
  private finish: string | undefined;
  private done = false;

  constructor(private readonly input: TranslateInput) {
    this.created = Math.floor(input.now() / 1000);
  }

  json(body: Buffer): Buffer | undefined {
    const m = jsonObject(body);
    if (!m || m.type !== 'message' || !Array.isArray(m.content)) return undefined;
    let text = '';
    const calls: Json[] = [];
    for (const block of m.content as Json[]) {
      if (block?.type === 'text') text += str(block.text);
      else if (block?.type === 'tool_use')
        calls.push({
          id: block.id,
          type: 'function',
          function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) },
        });
    }
    const message: Json = { role: 'assistant', content: calls.length > 0 && text === '' ? null : text };
    if (calls.length > 0) message.tool_calls = calls;
    return Buffer.from(
      JSON.stringify({
        id: m.id,
        object: 'chat.completion',
        created: this.created,
        // The id the endpoint was asked by (renamed to the public id), not a dated version of it.
        model: this.input.model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(m.stop_reason) }],
        usage: usageOf(m.usage as Json | undefined),
      }),
    );
  }

  private chunk(delta: Json, finish: string | null = null): string {
    return chunkEvent({
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.input.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
  }

  events(events: Buffer): Buffer {
    let out = '';
    for (const data of this.parser.feed(events)) {
      let e: Json;
      try {
        e = JSON.parse(data) as Json;
      } catch {
        continue;
      }
      out += this.event(e);
    }
    return Buffer.from(out);
  }

  private event(e: Json): string {
    switch (e.type) {
      case 'message_start': {
        const m = (e.message ?? {}) as Json;
        this.id = str(m.id);
        this.usage = m.usage as Json | undefined;
        return this.chunk({ role: 'assistant', content: '' });
      }
      case 'content_block_start': {
        const block = (e.content_block ?? {}) as Json;
        if (block.type === 'tool_use') {
          const index = this.tools.size;
          this.tools.set(Number(e.index), index);
          return this.chunk({
            tool_calls: [
              { index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } },
            ],
          });
        }
        if (block.type === 'text' && typeof block.text === 'string' && block.text !== '')
          return this.chunk({ content: block.text });
        return '';
      }
      case 'content_block_delta': {
        const delta = (e.delta ?? {}) as Json;
        if (delta.type === 'text_delta') return this.chunk({ content: str(delta.text) });
        if (delta.type === 'input_json_delta') {
          const index = this.tools.get(Number(e.index));
          if (index === undefined) return '';
          return this.chunk({ tool_calls: [{ index, function: { arguments: str(delta.partial_json) } }] });
        }
        // Extended thinking, as vLLM and DeepSeek name it.
        if (delta.type === 'thinking_delta') return this.chunk({ reasoning_content: str(delta.thinking) });
        return '';
      }
      case 'message_delta': {
        const usage = e.usage as Json | undefined;
        if (typeof usage?.output_tokens === 'number') this.outputTokens = usage.output_tokens;
        // The counts are cumulative; newer versions of the API repeat the input counts here.
        for (const field of ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'])
          if (typeof usage?.[field] === 'number') this.usage = { ...this.usage, [field]: usage[field] };
        this.finish = finishReason(((e.delta ?? {}) as Json).stop_reason);
        return this.chunk({}, this.finish);
      }
      case 'message_stop': {
        if (this.done) return '';
        this.done = true;
        const usage = wantsUsage(this.input.json)
          ? chunkEvent({
              id: this.id,
              object: 'chat.completion.chunk',
              created: this.created,
              model: this.input.model,
              choices: [],
              usage: usageOf(this.usage, this.outputTokens),
            })
          : '';
        return usage + DONE_EVENT;
      }
      case 'error': {
        const err = (e.error ?? {}) as Json;
        return chunkEvent({
          error: { message: str(err.message) || 'error', type: str(err.type) || 'api_error' },
        });
      }
      default:
        // ping, content_block_stop and event types to come carry nothing for the client.
        return '';
    }
  }

  end(): Buffer {
    return Buffer.alloc(0);
  }
}
