import { InvalidRequestError } from '../errors/gateway-error.js';
import { estimatePromptTokens } from '../services/usage/token-estimate.js';

/**
 * Anthropic's Messages API served in front of any endpoint (`POST /v1/messages`): an Anthropic request
 * becomes an OpenAI chat request, and the chat answer (JSON, or each stream chunk as it comes) becomes
 * Anthropic's message and events. The other direction of `anthropic.ts` (which calls Anthropic).
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string, param: string): never {
  throw new InvalidRequestError(message, { param });
}

/** A Messages request, translated. */
export interface MessagesRequest {
  model: string;
  stream: boolean;
  /** Extended thinking asked for: reasoning the model returns comes back as thinking blocks. */
  thinking: boolean;
  /** The same request as an OpenAI chat completion. */
  chat: Json;
}

/** Checks an Anthropic Messages request and translates it to OpenAI's chat format (400 naming the field). */
export function chatRequestOf(body: unknown): MessagesRequest {
  if (!isObject(body)) bad('The body must be a JSON object (a Messages API request).', 'body');
  const { model } = body;
  if (typeof model !== 'string' || model === '') bad("'model' is required: the model to use", 'model');
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    bad("'messages' must be a non-empty array of {role, content}", 'messages');
  const messages: Json[] = [];
  const system = systemText(body.system);
  if (system !== undefined) messages.push({ role: 'system', content: system });
  body.messages.forEach((m: unknown, i: number) => messages.push(...chatMessages(m, `messages.${i}`)));
  const chat: Json = { model, messages };

  if (body.max_tokens !== undefined) chat.max_tokens = positiveInt(body.max_tokens, 'max_tokens');
  for (const name of ['temperature', 'top_p', 'top_k'] as const) {
    const v = body[name];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(`'${name}' must be a number ≥ 0`, name);
    chat[name] = v;
  }
  if (body.stop_sequences !== undefined) {
    const stops = body.stop_sequences;
    if (!Array.isArray(stops) || !stops.every((s) => typeof s === 'string'))
      bad("'stop_sequences' must be an array of strings", 'stop_sequences');
    if (stops.length > 0) chat.stop = stops;
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) bad("'tools' must be an array", 'tools');
    if (body.tools.length > 0)
      chat.tools = body.tools.map((t: unknown, i: number) => chatTool(t, `tools.${i}`));
  }
  if (body.tool_choice !== undefined) Object.assign(chat, toolChoice(body.tool_choice));
  if (isObject(body.metadata) && typeof body.metadata.user_id === 'string') chat.user = body.metadata.user_id;
  if (body.output_config !== undefined && body.output_config !== null)
    Object.assign(chat, outputConfig(body.output_config));
  if (body.stream !== undefined && typeof body.stream !== 'boolean')
    bad("'stream' must be true or false", 'stream');
  const stream = body.stream === true;
  if (stream) {
    chat.stream = true;
    chat.stream_options = { include_usage: true };
  }
  const thinking = isObject(body.thinking) && body.thinking.type === 'enabled';
  return { model, stream, thinking, chat };
}

/** What `POST /v1/messages/count_tokens` answers: the gateway's estimate of the prompt (no tokenizer). */
export function countTokens(body: unknown): { model: string; input_tokens: number } {
  const { model, chat } = chatRequestOf(isObject(body) ? { ...body, stream: false } : body);
  return { model, input_tokens: estimatePromptTokens(chat) };
}

function positiveInt(v: unknown, param: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    bad(`'${param}' must be a whole number above 0`, param);
  return v;
}

function systemText(system: unknown): string | undefined {
  if (system === undefined || system === null) return undefined;
  if (typeof system === 'string') return system === '' ? undefined : system;
  if (!Array.isArray(system)) bad("'system' must be a string or an array of text blocks", 'system');
  const texts = system.map((b: unknown, i: number) => {
    if (!isObject(b) || b.type !== 'text' || typeof b.text !== 'string')
      bad("'system' blocks must be {type: 'text', text}", `system.${i}`);
    return b.text;
  });
  return texts.length === 0 ? undefined : texts.join('\n');
}

/** One Anthropic message as OpenAI messages: a user turn's tool results become `tool` messages first. */
function chatMessages(m: unknown, at: string): Json[] {
  if (!isObject(m)) bad('Each message must be an object {role, content}', at);
  const { role } = m;
  if (role !== 'user' && role !== 'assistant') bad("'role' must be 'user' or 'assistant'", `${at}.role`);
  const content = m.content;
  if (typeof content === 'string') return [{ role, content }];
  if (!Array.isArray(content)) bad("'content' must be a string or an array of blocks", `${at}.content`);
  const parts: Json[] = [];
  const toolCalls: Json[] = [];
  const toolResults: Json[] = [];
  content.forEach((b: unknown, j: number) => {
    const where = `${at}.content.${j}`;
    if (!isObject(b) || typeof b.type !== 'string')
      bad('Each content block must be an object with a type', where);
    switch (b.type) {
      case 'text':
        if (typeof b.text !== 'string') bad("A text block needs 'text'", `${where}.text`);
        parts.push({ type: 'text', text: b.text });
        return;
      case 'image':
        parts.push({ type: 'image_url', image_url: { url: imageUrl(b.source, `${where}.source`) } });
        return;
      case 'document':
        parts.push({ type: 'text', text: documentText(b, where) });
        return;
      case 'thinking':
      case 'redacted_thinking':
        // The model's earlier reasoning is not sent back to open models (their templates drop it too).
        return;
      case 'tool_use':
        if (role !== 'assistant') bad('tool_use blocks belong to assistant messages', `${where}.type`);
        if (typeof b.id !== 'string' || typeof b.name !== 'string')
          bad("A tool_use block needs 'id' and 'name'", where);
        toolCalls.push({
          id: b.id,
          type: 'function',
          function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) },
        });
        return;
      case 'tool_result': {
        if (role !== 'user') bad('tool_result blocks belong to user messages', `${where}.type`);
        if (typeof b.tool_use_id !== 'string')
          bad("A tool_result block needs 'tool_use_id'", `${where}.tool_use_id`);
        const { text, images } = toolResultContent(b.content, `${where}.content`);
        toolResults.push({
          role: 'tool',
          tool_call_id: b.tool_use_id,
          content: b.is_error === true ? `Error: ${text}` : text,
        });
        parts.push(...images);
        return;
      }
      default:
        bad(
          `Content blocks of type '${b.type.slice(0, 64)}' are not supported here: use text, image, document, tool_use and tool_result`,
          `${where}.type`,
        );
    }
  });
  const out: Json[] = [...toolResults];
  if (role === 'assistant') {
    const text = parts.map((p) => p.text as string).join('');
    if (text !== '' || toolCalls.length === 0)
      out.push({ role, content: text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) });
    else out.push({ role, content: null, tool_calls: toolCalls });
  } else if (parts.length > 0 || toolResults.length === 0) {
    // Text alone is sent as one string: every OpenAI-compatible server takes that.
    const textOnly = parts.every((p) => p.type === 'text');
    out.push({ role, content: textOnly ? parts.map((p) => p.text as string).join('\n') : parts });
  }
  return out;
}

function imageUrl(source: unknown, at: string): string {
  if (isObject(source)) {
    if (source.type === 'base64' && typeof source.media_type === 'string' && typeof source.data === 'string')
      return `data:${source.media_type};base64,${source.data}`;
    if (source.type === 'url' && typeof source.url === 'string') return source.url;
  }
  bad("An image 'source' must be {type: 'base64', media_type, data} or {type: 'url', url}", at);
}

function documentText(b: Json, at: string): string {
  const { source } = b;
  if (isObject(source)) {
    if (source.type === 'text' && typeof source.data === 'string') return source.data;
    if (source.type === 'content') {
      if (typeof source.content === 'string') return source.content;
      if (Array.isArray(source.content))
        return source.content
          .filter((c): c is Json => isObject(c) && c.type === 'text' && typeof c.text === 'string')
          .map((c) => c.text as string)
          .join('\n');
    }
  }
  bad(
    'Only text documents are supported here (source type text or content): the models behind this gateway read no PDF',
    `${at}.source`,
  );
}

function toolResultContent(content: unknown, at: string): { text: string; images: Json[] } {
  if (content === undefined) return { text: '', images: [] };
  if (typeof content === 'string') return { text: content, images: [] };
  if (!Array.isArray(content)) bad("A tool_result's 'content' must be a string or an array of blocks", at);
  const texts: string[] = [];
  const images: Json[] = [];
  content.forEach((c: unknown, k: number) => {
    if (isObject(c) && c.type === 'text' && typeof c.text === 'string') texts.push(c.text);
    else if (isObject(c) && c.type === 'image')
      images.push({ type: 'image_url', image_url: { url: imageUrl(c.source, `${at}.${k}.source`) } });
    else if (isObject(c) && c.type === 'document') texts.push(documentText(c, `${at}.${k}`));
    else bad('tool_result content blocks must be text, image or document', `${at}.${k}`);
  });
  return { text: texts.join('\n'), images };
}

function chatTool(t: unknown, at: string): Json {
  if (!isObject(t)) bad('Each tool must be an object {name, description?, input_schema}', at);
  if (t.type !== undefined && t.type !== 'custom')
    bad(
      `Tool type '${(typeof t.type === 'string' ? t.type : JSON.stringify(t.type)).slice(0, 64)}' is one of Anthropic's server tools, which the models here do not have: define it as a custom tool`,
      `${at}.type`,
    );
  if (typeof t.name !== 'string' || t.name === '') bad("A tool needs a 'name'", `${at}.name`);
  if (!isObject(t.input_schema))
    bad("A tool needs an 'input_schema' (a JSON Schema object)", `${at}.input_schema`);
  return {
    type: 'function',
    function: {
      name: t.name,
      ...(typeof t.description === 'string' ? { description: t.description } : {}),
      parameters: t.input_schema,
    },
  };
}

/** Structured output (a JSON schema) and effort, as OpenAI's response_format and reasoning_effort. */
function outputConfig(config: unknown): Json {
  if (!isObject(config)) bad("'output_config' must be an object {format?, effort?}", 'output_config');
  const out: Json = {};
  const { format, effort } = config;
  if (format !== undefined && format !== null) {
    if (!isObject(format) || format.type !== 'json_schema' || !isObject(format.schema))
      bad("'output_config.format' must be {type: 'json_schema', schema}", 'output_config.format');
    out.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema } };
  }
  if (effort !== undefined && effort !== null) {
    if (typeof effort !== 'string' || !['low', 'medium', 'high', 'xhigh', 'max'].includes(effort))
      bad("'output_config.effort' must be low, medium, high, xhigh or max", 'output_config.effort');
    out.reasoning_effort = effort === 'low' || effort === 'medium' ? effort : 'high';
  }
  return out;
}

function toolChoice(choice: unknown): Json {
  if (!isObject(choice)) bad("'tool_choice' must be an object {type}", 'tool_choice');
  const parallel = choice.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {};
  switch (choice.type) {
    case 'auto':
      return { tool_choice: 'auto', ...parallel };
    case 'any':
      return { tool_choice: 'required', ...parallel };
    case 'none':
      return { tool_choice: 'none' };
    case 'tool':
      if (typeof choice.name !== 'string')
        bad("'tool_choice.name' is required with type 'tool'", 'tool_choice.name');
      return { tool_choice: { type: 'function', function: { name: choice.name } }, ...parallel };
    default:
      bad("'tool_choice.type' must be auto, any, tool or none", 'tool_choice.type');
  }
}

// ---- the answer ----

/** Anthropic's message id for a chat completion's. */
export function messageId(chatId: unknown): string {
  return typeof chatId === 'string' && chatId !== ''
    ? `msg_${chatId.replace(/^chatcmpl-/, '')}`
    : `msg_${Date.now().toString(36)}`;
}

/** A finish reason as Anthropic's stop reason (and the stop sequence vLLM names in `stop_reason`). */
function stopOf(finish: unknown, stopReason: unknown): { stop_reason: string; stop_sequence: string | null } {
  switch (finish) {
    case 'length':
      return { stop_reason: 'max_tokens', stop_sequence: null };
    case 'tool_calls':
    case 'function_call':
      return { stop_reason: 'tool_use', stop_sequence: null };
    case 'content_filter':
      return { stop_reason: 'refusal', stop_sequence: null };
    default:
      return typeof stopReason === 'string'
        ? { stop_reason: 'stop_sequence', stop_sequence: stopReason }
        : { stop_reason: 'end_turn', stop_sequence: null };
  }
}

/**
 * OpenAI usage as Anthropic's (cached prompt tokens are counted apart, as Anthropic does). Without
 * usage from the model server, `fallback`: the gateway's estimates.
 */
function usageOf(usage: unknown, fallback: Json): Json {
  if (!isObject(usage)) return fallback;
  const prompt = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  const details = usage.prompt_tokens_details;
  const cached = isObject(details) && typeof details.cached_tokens === 'number' ? details.cached_tokens : 0;
  return {
    input_tokens: Math.max(0, prompt - cached),
    output_tokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0,
    ...(cached > 0 ? { cache_read_input_tokens: cached, cache_creation_input_tokens: 0 } : {}),
  };
}

const reasoningOf = (m: Json): string | undefined =>
  typeof m.reasoning_content === 'string'
    ? m.reasoning_content
    : typeof m.reasoning === 'string'
      ? m.reasoning
      : undefined;

function toolInput(args: unknown): unknown {
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const input = JSON.parse(args) as unknown;
    return isObject(input) ? input : { value: input };
  } catch {
    // Arguments that are not JSON (a model's slip) are kept, not lost.
    return { arguments: args };
  }
}

/** Tokens of generated text, estimated as the gateway does elsewhere (about four characters a token). */
const estimateTokens = (chars: number) => Math.ceil(chars / 4);

/**
 * A chat completion (JSON) as Anthropic's message. `inputEstimate`: the prompt's estimated tokens, told
 * when the model server reported no usage.
 */
export function messageOf(chat: unknown, model: string, thinking: boolean, inputEstimate = 0): Json {
  const c = isObject(chat) ? chat : {};
  const choice = Array.isArray(c.choices) && isObject(c.choices[0]) ? c.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const content: Json[] = [];
  const reasoning = reasoningOf(message);
  if (thinking && reasoning) content.push({ type: 'thinking', thinking: reasoning, signature: '' });
  if (typeof message.content === 'string' && message.content !== '')
    content.push({ type: 'text', text: message.content });
  if (Array.isArray(message.tool_calls))
    for (const call of message.tool_calls as unknown[]) {
      if (!isObject(call) || !isObject(call.function)) continue;
      content.push({
        type: 'tool_use',
        id: typeof call.id === 'string' ? call.id : `toolu_${content.length}`,
        name: typeof call.function.name === 'string' ? call.function.name : '',
        input: toolInput(call.function.arguments),
      });
    }
  return {
    id: messageId(c.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    ...stopOf(choice.finish_reason, choice.stop_reason),
    usage: usageOf(c.usage, {
      input_tokens: inputEstimate,
      output_tokens: estimateTokens(
        (typeof message.content === 'string' ? message.content.length : 0) +
          (Array.isArray(message.tool_calls) ? JSON.stringify(message.tool_calls).length : 0),
      ),
    }),
  };
}

/** One Anthropic event on the wire. */
const event = (type: string, data: Json): string =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** Anthropic's error type for an HTTP status. */
export function anthropicErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 402) return 'billing_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit_error';
  if (status === 503 || status === 529) return 'overloaded_error';
  if (status === 504) return 'timeout_error';
  if (status >= 400 && status < 500) return 'invalid_request_error';
  return 'api_error';
}

/** Anthropic's error body. */
export function anthropicError(status: number, message: string, requestId?: string, code?: string): Json {
  return {
    type: 'error',
    // `code`: the gateway's own error code (docs/errors.md) beside Anthropic's type, which says less
    // (a refused key, a missing one and an expired one are all `authentication_error`).
    error: { type: anthropicErrorType(status), message, ...(code ? { code } : {}) },
    ...(requestId ? { request_id: requestId } : {}),
  };
}

/**
 * A chat completion stream, chunk by chunk, as Anthropic's events: `message_start`, then per content
 * block `content_block_start`, its deltas and `content_block_stop`, then `message_delta` (stop reason,
 * usage) and `message_stop`. Each chunk's events are returned at once: nothing is held back.
 */
export class MessagesStream {
  private started = false;
  private index = -1;
  /** The block open for text or thinking (-1: none). */
  private textBlock = -1;
  private textKind: 'text' | 'thinking' | undefined;
  /** Tool calls by the chunk's tool index -> their block. */
  private readonly tools = new Map<number, number>();
  private readonly openTools = new Set<number>();
  private finish: unknown;
  private stopReason: unknown;
  private usage: unknown;
  /** Characters generated, for an estimate when no usage comes. */
  private outputChars = 0;
  ended = false;

  constructor(
    private readonly model: string,
    private readonly thinking: boolean,
    /** The prompt's estimate, told in message_start (the real count comes with message_delta). */
    private readonly inputEstimate: number,
  ) {}

  /** The events of one chat chunk. */
  chunk(chunk: unknown): string {
    if (!isObject(chunk)) return '';
    let out = this.start(chunk.id);
    if (isObject(chunk.usage)) this.usage = chunk.usage;
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (!choice) return out;
    const delta = isObject(choice.delta) ? choice.delta : {};
    const reasoning = reasoningOf(delta);
    if (this.thinking && reasoning) out += this.text('thinking', reasoning);
    if (typeof delta.content === 'string' && delta.content !== '') out += this.text('text', delta.content);
    if (Array.isArray(delta.tool_calls))
      for (const call of delta.tool_calls as unknown[]) if (isObject(call)) out += this.tool(call);
    if (choice.finish_reason !== undefined && choice.finish_reason !== null) {
      this.finish = choice.finish_reason;
      this.stopReason = choice.stop_reason;
    }
    return out;
  }

  /** The end of a complete stream. */
  done(): string {
    if (this.ended) return '';
    this.ended = true;
    let out = this.start(undefined) + this.closeText() + this.closeTools();
    // Without usage from the model server: the output estimated, the input left as message_start said.
    const usage = usageOf(this.usage, { output_tokens: estimateTokens(this.outputChars) });
    out += event('message_delta', { delta: stopOf(this.finish, this.stopReason), usage });
    out += event('message_stop', {});
    return out;
  }

  /**
   * A heartbeat of the chat route (the model has not answered yet): Anthropic's `ping`, after the
   * message's start, so that proxies see a live stream.
   */
  ping(): string {
    if (this.ended) return '';
    return this.started ? event('ping', {}) : this.start(undefined);
  }

  /** A broken stream's end: Anthropic's error event (with the gateway's code when there is one). */
  error(status: number, message: string, code?: string): string {
    if (this.ended) return '';
    this.ended = true;
    return event('error', {
      error: { type: anthropicErrorType(status), message, ...(code ? { code } : {}) },
    });
  }

  private start(id: unknown): string {
    if (this.started) return '';
    this.started = true;
    return (
      event('message_start', {
        message: {
          id: messageId(id),
          type: 'message',
          role: 'assistant',
          model: this.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: this.inputEstimate, output_tokens: 0 },
        },
      }) + event('ping', {})
    );
  }

  private text(kind: 'text' | 'thinking', text: string): string {
    this.outputChars += text.length;
    let out = '';
    if (this.textKind !== kind) {
      out += this.closeText() + this.closeTools();
      this.textBlock = ++this.index;
      this.textKind = kind;
      out += event('content_block_start', {
        index: this.textBlock,
        content_block:
          kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' },
      });
    }
    return (
      out +
      event('content_block_delta', {
        index: this.textBlock,
        delta: kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text },
      })
    );
  }

  private tool(call: Json): string {
    const at = typeof call.index === 'number' ? call.index : 0;
    const fn = isObject(call.function) ? call.function : {};
    let out = '';
    let block = this.tools.get(at);
    if (block === undefined) {
      // One block at a time, as Anthropic streams them: the text or the call before it ends here.
      out += this.closeText() + this.closeTools();
      block = ++this.index;
      this.tools.set(at, block);
      this.openTools.add(block);
      out += event('content_block_start', {
        index: block,
        content_block: {
          type: 'tool_use',
          id: typeof call.id === 'string' ? call.id : `toolu_${block}`,
          name: typeof fn.name === 'string' ? fn.name : '',
          input: {},
        },
      });
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      this.outputChars += fn.arguments.length;
      out += event('content_block_delta', {
        index: block,
        delta: { type: 'input_json_delta', partial_json: fn.arguments },
      });
    }
    return out;
  }

  private closeText(): string {
    if (this.textKind === undefined) return '';
    const index = this.textBlock;
    this.textKind = undefined;
    this.textBlock = -1;
    return event('content_block_stop', { index });
  }

  private closeTools(): string {
    let out = '';
    for (const index of this.openTools) out += event('content_block_stop', { index });
    this.openTools.clear();
    return out;
  }
}
