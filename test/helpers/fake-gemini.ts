import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>;

/** What the fake does with the next generate request. */
export type GeminiBehavior =
  | { type: 'text'; text: string; finishReason?: string }
  | { type: 'tool'; name: string; args: Json; text?: string }
  | { type: 'status'; status: number; errorStatus: string; message: string };

export const GEMINI_KEY = 'gemini-upstream-secret-0123456789';

const GENERATION_CONFIG = new Set([
  'stopSequences',
  'responseMimeType',
  'responseSchema',
  'responseJsonSchema',
  'candidateCount',
  'maxOutputTokens',
  'temperature',
  'topP',
  'topK',
  'seed',
  'presencePenalty',
  'frequencyPenalty',
  'responseLogprobs',
  'logprobs',
  'thinkingConfig',
]);
const PART_FIELDS = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse'];

/**
 * A fake of Google's Gemini API (v1beta, native) that checks requests as the real one does (the key as
 * `x-goog-api-key`, the paths `models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
 * `:batchEmbedContents`, the body: `contents` of `user`/`model` turns whose parts hold exactly one kind of
 * data, known generationConfig fields, function declarations) and answers with the documented shapes
 * (candidates with content parts, finishReason, usageMetadata; SSE events separated by CRLF CRLF; errors
 * as `{error: {code, message, status}}`).
 */
export class FakeGemini {
  readonly requests: Array<{ url: string; headers: http.IncomingHttpHeaders; json: Json }> = [];
  readonly script: GeminiBehavior[] = [];
  defaultBehavior: GeminiBehavior = { type: 'text', text: 'Hello from Gemini.' };
  /** Models that generate content, and models that embed. */
  models = ['gemini-test'];
  embeddingModels = ['embedding-test'];
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

  private error(res: http.ServerResponse, code: number, status: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify({ error: { code, message, status } }));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.headers['x-goog-api-key'] !== GEMINI_KEY)
      return this.error(res, 400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');
    const url = new URL(req.url!, 'http://fake');
    if (req.method === 'GET' && url.pathname === '/v1beta/models') {
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(
        JSON.stringify({
          models: [
            ...this.models.map((m) => ({
              name: `models/${m}`,
              supportedGenerationMethods: ['generateContent', 'countTokens'],
            })),
            ...this.embeddingModels.map((m) => ({
              name: `models/${m}`,
              supportedGenerationMethods: ['embedContent'],
            })),
            { name: 'models/aqa', supportedGenerationMethods: ['generateAnswer'] },
          ],
        }),
      );
      return;
    }
    const route =
      /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents)$/.exec(
        url.pathname,
      );
    if (req.method !== 'POST' || !route)
      return this.error(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
    const [, model, method] = route as unknown as [string, string, string];
    let json: Json;
    try {
      json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
    } catch {
      return this.error(res, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
    }
    this.requests.push({ url: req.url!, headers: req.headers, json });

    if (method === 'batchEmbedContents') {
      if (!this.embeddingModels.includes(model))
        return this.error(res, 404, 'NOT_FOUND', `models/${model} is not found for embedContent`);
      const problem = invalidEmbed(json, model);
      if (problem) return this.error(res, 400, 'INVALID_ARGUMENT', problem);
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(
        JSON.stringify({
          embeddings: (json.requests as Json[]).map((r, i) => ({
            values: Array.from({ length: r.outputDimensionality ?? 4 }, (_, k) => i + k / 4),
          })),
        }),
      );
      return;
    }
    if (!this.models.includes(model))
      return this.error(res, 404, 'NOT_FOUND', `models/${model} is not found for generateContent`);
    const stream = method === 'streamGenerateContent';
    if (stream && url.searchParams.get('alt') !== 'sse')
      return this.error(res, 400, 'INVALID_ARGUMENT', 'this fake streams only with alt=sse');
    const problem = invalidGenerate(json);
    if (problem) return this.error(res, 400, 'INVALID_ARGUMENT', problem);
    const behavior = this.script.shift() ?? this.defaultBehavior;
    if (behavior.type === 'status')
      return this.error(res, behavior.status, behavior.errorStatus, behavior.message);

    const usageMetadata = { promptTokenCount: 9, candidatesTokenCount: 4, totalTokenCount: 13 };
    const text = behavior.type === 'tool' ? (behavior.text ?? '') : behavior.text;
    const call =
      behavior.type === 'tool' ? { functionCall: { name: behavior.name, args: behavior.args } } : undefined;
    const finishReason = behavior.type === 'text' ? (behavior.finishReason ?? 'STOP') : 'STOP';
    if (!stream) {
      const parts = [...(text ? [{ text }] : []), ...(call ? [call] : [])];
      res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(
        JSON.stringify({
          candidates: [{ content: { parts, role: 'model' }, finishReason, index: 0 }],
          usageMetadata,
          modelVersion: `${model}-001`,
          responseId: `resp-${this.requests.length}`,
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (o: Json) => res.write(`data: ${JSON.stringify(o)}\r\n\r\n`);
    const words = text ? text.split(/(?<= )/) : [];
    for (const [i, w] of words.entries()) {
      const last = i === words.length - 1 && !call;
      send({
        candidates: [
          { content: { parts: [{ text: w }], role: 'model' }, index: 0, ...(last ? { finishReason } : {}) },
        ],
        usageMetadata: last ? usageMetadata : { promptTokenCount: 9, totalTokenCount: 9 },
        modelVersion: `${model}-001`,
      });
    }
    if (call)
      send({
        candidates: [{ content: { parts: [call], role: 'model' }, finishReason, index: 0 }],
        usageMetadata,
        modelVersion: `${model}-001`,
      });
    res.end();
  }
}

/** What the real API would refuse in a generate request, in its words; undefined if nothing. */
function invalidGenerate(json: Json): string | undefined {
  if (!Array.isArray(json.contents) || json.contents.length === 0)
    return '* GenerateContentRequest.contents: contents is not specified';
  for (const [i, c] of (json.contents as Json[]).entries()) {
    if (c.role !== 'user' && c.role !== 'model')
      return `Please use a valid role: user, model. (contents[${i}].role: ${c.role})`;
    const problem = invalidParts(c.parts, `contents[${i}]`);
    if (problem) return problem;
  }
  if (json.systemInstruction !== undefined) {
    const problem = invalidParts(json.systemInstruction.parts, 'systemInstruction');
    if (problem) return problem;
  }
  for (const key of Object.keys(json.generationConfig ?? {}))
    if (!GENERATION_CONFIG.has(key))
      return `Invalid JSON payload received. Unknown name "${key}" at 'generation_config': Cannot find field.`;
  for (const t of (json.tools ?? []) as Json[])
    for (const f of (t.functionDeclarations ?? []) as Json[])
      if (typeof f.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(f.name))
        return `* GenerateContentRequest.tools[0].function_declarations: invalid name ${f.name}`;
  const unknown = Object.keys(json).find(
    (k) =>
      ![
        'contents',
        'systemInstruction',
        'generationConfig',
        'tools',
        'toolConfig',
        'safetySettings',
      ].includes(k),
  );
  if (unknown) return `Invalid JSON payload received. Unknown name "${unknown}": Cannot find field.`;
  return undefined;
}

function invalidParts(parts: unknown, where: string): string | undefined {
  if (!Array.isArray(parts) || parts.length === 0) return `* ${where}.parts: must not be empty`;
  for (const p of parts as Json[]) {
    const kinds = PART_FIELDS.filter((f) => p[f] !== undefined);
    if (kinds.length !== 1)
      return `* ${where}.parts: a part must hold exactly one of ${PART_FIELDS.join(', ')}`;
    if (
      p.functionResponse &&
      (typeof p.functionResponse.name !== 'string' || typeof p.functionResponse.response !== 'object')
    )
      return `* ${where}.parts.function_response: name and response are required`;
  }
  return undefined;
}

function invalidEmbed(json: Json, model: string): string | undefined {
  if (!Array.isArray(json.requests) || json.requests.length === 0)
    return '* BatchEmbedContentsRequest.requests: empty';
  for (const r of json.requests as Json[]) {
    if (r.model !== `models/${model}`)
      return `* BatchEmbedContentsRequest.model: all requests must name the model of the URL (${r.model})`;
    const problem = invalidParts(r.content?.parts, 'requests.content');
    if (problem) return problem;
  }
  return undefined;
}
