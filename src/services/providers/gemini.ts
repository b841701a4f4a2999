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
const EMBEDDINGS = '/v1/embeddings';

/**
 * Google's Gemini API, native (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
 * key as `x-goog-api-key`): OpenAI chat requests are translated to it and its answers back. Gemini has
 * no prefill, so its endpoints do not continue broken streams.
 */
export function gemini(): Provider {
  return {
    name: 'gemini',
    // Embeddings of text (Gemini embeds no token ids).
    serves: (path, json) =>
      path === CHAT || (path === EMBEDDINGS && json !== undefined && textInputs(json) !== undefined),
    continues: false,
    credentials: (endpoint): Record<string, string> =>
      endpoint.apiKey ? { 'x-goog-api-key': endpoint.apiKey } : {},
    models: {
      path: '/v1beta/models?pageSize=1000',
      items: (json) => {
        const models = (json as { models?: unknown } | null)?.models;
        if (!Array.isArray(models)) return undefined;
        return (
          (models as Json[])
            // Models that chat or embed (not the ones only for tokens counts, caching, tuning…).
            .filter(
              (m) =>
                !Array.isArray(m.supportedGenerationMethods) ||
                (m.supportedGenerationMethods as unknown[]).some(
                  (g) => g === 'generateContent' || g === 'embedContent',
                ),
            )
            .map((m) => ({ id: str(m.name).replace(/^models\//, '') }))
        );
      },
    },
    translate: (input) => {
      const model = encodeURIComponent(input.model);
      if (input.path === EMBEDDINGS)
        return {
          call: {
            path: `/v1beta/models/${model}:batchEmbedContents`,
            body: Buffer.from(JSON.stringify(geminiEmbedRequest(input))),
          },
          answer: new GeminiEmbeddings(input),
        };
      const path = input.stream
        ? `/v1beta/models/${model}:streamGenerateContent?alt=sse`
        : `/v1beta/models/${model}:generateContent`;
      return {
        call: { path, body: Buffer.from(JSON.stringify(geminiRequest(input))) },
        answer: new GeminiAnswer(input),
      };
    },
  };
}

/** OpenAI's chat request as Gemini's. */
export function geminiRequest(input: TranslateInput): Json {
  const { json } = input;
  const system: string[] = [];
  const contents: Array<{ role: 'user' | 'model'; parts: Json[] }> = [];
  /** Tool call ids -> function names: a tool result names its function in Gemini. */
  const names = new Map<string, string>();
  const push = (role: 'user' | 'model', parts: Json[]) => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of (Array.isArray(json.messages) ? json.messages : []) as Json[]) {
    if (m === null || typeof m !== 'object') continue;
    if (m.role === 'system' || m.role === 'developer') system.push(textOf(m.content));
    else if (m.role === 'user') push('user', userParts(m.content));
    else if (m.role === 'assistant') {
      const parts: Json[] = [];
      const text = textOf(m.content);
      if (text !== '') parts.push({ text });
      for (const call of (Array.isArray(m.tool_calls) ? m.tool_calls : []) as Json[]) {
        const fn = (call.function ?? {}) as Json;
        names.set(str(call.id), str(fn.name));
        parts.push({ functionCall: { name: fn.name, args: parseArguments(fn.arguments) } });
      }
      push('model', parts);
    } else if (m.role === 'tool') {
      const text = textOf(m.content);
      let response: unknown;
      try {
        response = JSON.parse(text);
      } catch {
        response = undefined;
      }
      push('user', [
        {
          functionResponse: {
            name: names.get(str(m.tool_call_id)) ?? str(m.name),
            response:
              response !== null && typeof response === 'object' && !Array.isArray(response)
                ? response
                : { content: text },
          },
        },
      ]);
    }
  }
  const out: Json = { contents };
  if (system.length > 0) out.systemInstruction = { parts: [{ text: system.join('\n\n') }] };
  const config: Json = {};
  const max = json.max_completion_tokens ?? json.max_tokens;
  if (typeof max === 'number' && max > 0) config.maxOutputTokens = Math.floor(max);
  if (typeof json.temperature === 'number') config.temperature = Math.min(2, Math.max(0, json.temperature));
  if (typeof json.top_p === 'number') config.topP = json.top_p;
  if (typeof json.n === 'number' && json.n > 1) config.candidateCount = json.n;
  const stop = stopsOf(json);
  if (stop.length > 0) config.stopSequences = stop;
  if (typeof json.seed === 'number') config.seed = json.seed;
  const format = json.response_format as Json | undefined;
  if (format?.type === 'json_object' || format?.type === 'json_schema')
    config.responseMimeType = 'application/json';
  if (Object.keys(config).length > 0) out.generationConfig = config;
  if (Array.isArray(json.tools) && json.tools.length > 0) {
    out.tools = [
      {
        functionDeclarations: (json.tools as Json[]).map((t) => {
          const fn = (t.function ?? {}) as Json;
          return {
            name: fn.name,
            ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
            ...(fn.parameters ? { parameters: fn.parameters } : {}),
          };
        }),
      },
    ];
    const choice = json.tool_choice;
    const mode =
      choice === 'none'
        ? 'NONE'
        : choice === 'required' || (choice && typeof choice === 'object')
          ? 'ANY'
          : 'AUTO';
    const only = ((choice as Json | undefined)?.function as Json | undefined)?.name;
    out.toolConfig = {
      functionCallingConfig: { mode, ...(typeof only === 'string' ? { allowedFunctionNames: [only] } : {}) },
    };
  }
  return out;
}

function userParts(content: unknown): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  if (!Array.isArray(content)) return [];
  const parts: Json[] = [];
  for (const part of content as Json[]) {
    if (part?.type === 'text' && typeof part.text === 'string') parts.push({ text: part.text });
    else if (part?.type === 'image_url') {
      const url = str(((part.image_url ?? {}) as Json).url);
      const data = dataUrl(url);
      parts.push(
        data
          ? { inlineData: { mimeType: data.mediaType, data: data.data } }
          : { fileData: { fileUri: url, mimeType: 'image/*' } },
      );
    }
  }
  return parts;
}

const FINISH: Record<string, string> = {
  STOP: 'stop',
  MAX_TOKENS: 'length',
  SAFETY: 'content_filter',
  RECITATION: 'content_filter',
  BLOCKLIST: 'content_filter',
  PROHIBITED_CONTENT: 'content_filter',
  SPII: 'content_filter',
  IMAGE_SAFETY: 'content_filter',
};

function usageOf(u: Json | undefined): Json | undefined {
  if (!u) return undefined;
  const prompt = typeof u.promptTokenCount === 'number' ? u.promptTokenCount : 0;
  const completion =
    (typeof u.candidatesTokenCount === 'number' ? u.candidatesTokenCount : 0) +
    (typeof u.thoughtsTokenCount === 'number' ? u.thoughtsTokenCount : 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

class GeminiAnswer implements AnswerTranslation {
  private readonly parser = new SseParser();
  private readonly created: number;
  private readonly id: string;
  private usage: Json | undefined;
  private started = false;
  private calls = 0;

  constructor(private readonly input: TranslateInput) {
    this.created = Math.floor(input.now() / 1000);
    this.id = `chatcmpl-${this.created.toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
  }

  /** The parts of a candidate as an OpenAI message or delta (text, and tool calls with ids of ours). */
  private message(parts: Json[], streamed: boolean): { text: string; calls: Json[] } {
    let text = '';
    const calls: Json[] = [];
    for (const p of parts) {
      if (typeof p.text === 'string' && p.thought !== true) text += p.text;
      else if (p.functionCall && typeof p.functionCall === 'object') {
        const fc = p.functionCall as Json;
        const index = this.calls++;
        calls.push({
          ...(streamed ? { index } : {}),
          id: typeof fc.id === 'string' ? fc.id : `call_${index}`,
          type: 'function',
          function: { name: fc.name, arguments: JSON.stringify(fc.args ?? {}) },
        });
      }
    }
    return { text, calls };
  }

  json(body: Buffer): Buffer | undefined {
    const r = jsonObject(body);
    if (!r || !Array.isArray(r.candidates)) return undefined;
    const choices = (r.candidates as Json[]).map((c, i) => {
      const { text, calls } = this.message(((c.content as Json | undefined)?.parts ?? []) as Json[], false);
      const message: Json = { role: 'assistant', content: calls.length > 0 && text === '' ? null : text };
      if (calls.length > 0) message.tool_calls = calls;
      const finish = calls.length > 0 ? 'tool_calls' : (FINISH[str(c.finishReason)] ?? 'stop');
      return {
        index: typeof c.index === 'number' ? c.index : i,
        message,
        logprobs: null,
        finish_reason: finish,
      };
    });
    return Buffer.from(
      JSON.stringify({
        id: typeof r.responseId === 'string' ? r.responseId : this.id,
        object: 'chat.completion',
        created: this.created,
        // The id the endpoint was asked by (renamed to the public id as every answer is), not the
        // provider's version name.
        model: this.input.model,
        choices,
        usage: usageOf(r.usageMetadata as Json | undefined),
      }),
    );
  }

  private chunk(choices: Json[], extra: Json = {}): string {
    return chunkEvent({
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.input.model,
      choices,
      ...extra,
    });
  }

  events(events: Buffer): Buffer {
    let out = '';
    for (const data of this.parser.feed(events)) {
      let r: Json;
      try {
        r = JSON.parse(data) as Json;
      } catch {
        continue;
      }
      if (r.error) {
        out += chunkEvent({ error: r.error });
        continue;
      }
      if (r.usageMetadata) this.usage = r.usageMetadata as Json;
      for (const c of (Array.isArray(r.candidates) ? r.candidates : []) as Json[]) {
        const { text, calls } = this.message(((c.content as Json | undefined)?.parts ?? []) as Json[], true);
        const delta: Json = {};
        if (!this.started) delta.role = 'assistant';
        if (text !== '' || !this.started) delta.content = text;
        if (calls.length > 0) delta.tool_calls = calls;
        const finish =
          c.finishReason === undefined
            ? null
            : this.calls > 0
              ? 'tool_calls'
              : (FINISH[str(c.finishReason)] ?? 'stop');
        if (Object.keys(delta).length > 0 || finish !== null)
          out += this.chunk([{ index: 0, delta, logprobs: null, finish_reason: finish }]);
        this.started = true;
      }
    }
    return Buffer.from(out);
  }

  /** Gemini ends a stream by closing it: the usage (when asked) and [DONE] follow. */
  end(): Buffer {
    if (!this.started) return Buffer.alloc(0);
    const usage = usageOf(this.usage);
    return Buffer.from((wantsUsage(this.input.json) && usage ? this.chunk([], { usage }) : '') + DONE_EVENT);
  }
}

// ---- embeddings ----

/** An embeddings request's inputs when they are text (a string or strings); undefined otherwise. */
function textInputs(json: Readonly<Record<string, unknown>>): string[] | undefined {
  const { input } = json;
  if (typeof input === 'string') return [input];
  if (Array.isArray(input) && input.length > 0 && input.every((i) => typeof i === 'string')) return input;
  return undefined;
}

/** OpenAI's embeddings request as Gemini's `batchEmbedContents` (`dimensions` as `outputDimensionality`). */
export function geminiEmbedRequest(input: TranslateInput): Json {
  const { dimensions } = input.json;
  return {
    requests: (textInputs(input.json) ?? []).map((text) => ({
      model: `models/${input.model}`,
      content: { parts: [{ text }] },
      ...(typeof dimensions === 'number' ? { outputDimensionality: dimensions } : {}),
    })),
  };
}

/**
 * Gemini's embeddings as OpenAI's list: floats, or base64 of little-endian float32s when
 * `encoding_format` is `base64` (the openai SDK's default). Gemini reports no usage for embeddings: the
 * prompt's tokens are the gateway's estimate (about four characters a token).
 */
class GeminiEmbeddings implements AnswerTranslation {
  constructor(private readonly input: TranslateInput) {}

  json(body: Buffer): Buffer | undefined {
    const r = jsonObject(body);
    if (!r || !Array.isArray(r.embeddings)) return undefined;
    const base64 = this.input.json.encoding_format === 'base64';
    const data = (r.embeddings as Json[]).map((e, index) => {
      const values = (Array.isArray(e.values) ? e.values : []) as number[];
      return {
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(new Float32Array(values).buffer).toString('base64') : values,
      };
    });
    const chars = (textInputs(this.input.json) ?? []).reduce((n, t) => n + t.length, 0);
    const tokens = Math.ceil(chars / 4);
    return Buffer.from(
      JSON.stringify({
        object: 'list',
        data,
        model: this.input.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      }),
    );
  }

  /** Embeddings are never streamed. */
  events(): Buffer {
    return Buffer.alloc(0);
  }

  end(): Buffer {
    return Buffer.alloc(0);
  }
}
