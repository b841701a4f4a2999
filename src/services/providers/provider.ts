import type { EndpointConfig } from '../../config/types.js';
import type { ProviderName } from '../../config/providers.js';

/** The upstream request of one attempt, in the provider's own protocol. */
export interface UpstreamCall {
  /** Below the endpoint's base URL, with its query string. */
  path: string;
  body: Buffer;
}

/**
 * The answer of one attempt turned into OpenAI's shapes, as it comes: a JSON answer whole, a stream
 * event by event (each provider event becomes its client chunk at once: nothing is held back).
 */
export interface AnswerTranslation {
  /** A 2xx JSON answer as an OpenAI chat completion; undefined when it is not the provider's answer. */
  json(body: Buffer): Buffer | undefined;
  /** Whole provider events in, OpenAI chunk events out (`data: [DONE]` once the answer is complete). */
  events(events: Buffer): Buffer;
  /** The upstream response has ended: what is left to send (providers that end a stream by closing it). */
  end(): Buffer;
}

/** What the request asks, for a provider that translates it. */
export interface TranslateInput {
  endpoint: EndpointConfig;
  /** The OpenAI route's path (`/v1/chat/completions`, `/v1/embeddings`…). */
  path: string;
  /** The client's body, parsed (OpenAI's request shape). */
  json: Readonly<Record<string, unknown>>;
  /** The model as the endpoint knows it. */
  model: string;
  stream: boolean;
  /** The clock (seconds in `created`). */
  now: () => number;
}

/**
 * A provider: how the gateway speaks to endpoints of one type. `openai-compatible` (and the presets of
 * hosted services) translate nothing, so that the hot path stays as it is; others translate requests
 * and answers (`translate`), or only their path and credentials (Azure).
 */
export interface Provider {
  readonly name: ProviderName;
  /** Whether it serves this OpenAI route (others skip its endpoints), for this body when given. */
  serves(path: string, json?: Readonly<Record<string, unknown>>): boolean;
  /** A trailing assistant message is continued (stream continuation may use its endpoints). */
  readonly continues: boolean;
  /** The headers that carry the endpoint's key (made once per endpoint). */
  credentials(endpoint: EndpointConfig): Record<string, string>;
  /** The model list: its path, and its items as `{id}` objects (undefined: no list to ask). */
  readonly models?: { path: string; items: (json: unknown) => unknown[] | undefined } | undefined;
  /** The upstream path of a route, when only the path differs from OpenAI's (Azure, DeepInfra). */
  pathOf?(endpoint: EndpointConfig, path: string, model: string): string;
  /** The upstream request and the translation of its answer, for a provider with its own protocol. */
  translate?(input: TranslateInput): { call: UpstreamCall; answer: AnswerTranslation };
}

/** An OpenAI chunk event, for translations. */
export function chunkEvent(chunk: unknown): string {
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

export const DONE_EVENT = 'data: [DONE]\n\n';

/** A string field of a provider's JSON as text ('' when it is no string or number). */
export function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

/** A `data:` image URL's media type and base64 data; undefined for another URL. */
export function dataUrl(url: string): { mediaType: string; data: string } | undefined {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  return m ? { mediaType: m[1]!, data: m[2]! } : undefined;
}

/** The client (or the gateway, for its ledger) asked for the usage chunk at the end of a stream. */
export function wantsUsage(json: Readonly<Record<string, unknown>>): boolean {
  return (json.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
}

/** A provider's JSON answer as an object; undefined when it is not JSON or not an object. */
export function jsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A tool call's arguments (OpenAI sends them as JSON text) as an object; {} when they are no JSON. */
export function parseArguments(args: unknown): unknown {
  if (typeof args !== 'string') return args ?? {};
  try {
    const parsed: unknown = JSON.parse(args);
    return parsed !== null && typeof parsed === 'object' ? parsed : { value: parsed };
  } catch {
    return {};
  }
}

/** The text of an OpenAI content (a string, or parts of which the text ones count). */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const p of content as Array<Record<string, unknown> | null>)
    if (p?.type === 'text' && typeof p.text === 'string') text += p.text;
  return text;
}

/** A request's stop sequences (OpenAI's `stop`: a string or strings). */
export function stopsOf(json: Readonly<Record<string, unknown>>): string[] {
  const { stop } = json;
  if (typeof stop === 'string') return [stop];
  return Array.isArray(stop) ? stop.filter((s): s is string => typeof s === 'string') : [];
}
