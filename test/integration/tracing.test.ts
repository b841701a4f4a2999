import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY } from '../helpers/start-gateway.js';
import { useTestBed, type TestBed } from '../helpers/test-bed.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An OTLP/HTTP receiver: keeps every export it is sent and answers 200. */
async function otlpReceiver(bed: TestBed): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' });
      res.end(req.headers['content-type']?.includes('json') ? '{}' : '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  bed.onCleanup(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

function spansOf(received: Received[]): OtlpSpan[] {
  return received.flatMap((r) => {
    const json = JSON.parse(r.body.toString('utf8')) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    return json.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
  });
}

function attr(span: OtlpSpan, key: string): unknown {
  const value = span.attributes.find((a) => a.key === key)?.value;
  if (!value) return undefined;
  const v = Object.values(value)[0];
  return typeof v === 'string' && /^\d+$/.test(v) && 'intValue' in value ? Number(v) : v;
}

const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

describe('tracing (OTLP over HTTP)', () => {
  const bed = useTestBed();

  it('one server span per request and one client span per attempt, siblings, continuing the client’s traceparent', async () => {
    const collector = await otlpReceiver(bed);
    const a = await bed.upstream({ name: 'a', models: ['llama'] });
    const b = await bed.upstream({ name: 'b', models: ['llama'] });
    b.defaultBehavior = { type: 'answer', text: 'traced answer' };
    a.script({ type: 'status', status: 503, body: { error: { message: 'busy' } } });
    const gw = await bed.gateway({
      endpoints: [
        { url: a.url, name: 'a', priority: 1 },
        { url: b.url, name: 'b', priority: 2 },
      ],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
    });
    const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpan = '00f067aa0ba902b7';
    const sdk = new OpenAI({
      apiKey: CLIENT_KEY,
      baseURL: `${gw.url}/v1`,
      maxRetries: 0,
      defaultHeaders: { traceparent: `00-${clientTrace}-${clientSpan}-01` },
    });
    const { response } = await sdk.chat.completions
      .create({ model: 'llama', messages: [{ role: 'user', content: 'x' }] })
      .withResponse();
    const requestId = response.headers.get('x-request-id');
    await gw.gateway.tracing!.flush();

    expect(collector.received.every((r) => r.path === '/v1/traces')).toBe(true);
    expect(collector.received[0]!.headers['content-type']).toMatch(/^application\/json/);
    const spans = spansOf(collector.received);
    const server = spans.filter((s) => s.kind === SERVER);
    const attempts = spans.filter((s) => s.kind === CLIENT);
    expect(server).toHaveLength(1);
    expect(attempts).toHaveLength(2);
    const root = server[0]!;
    expect(root.traceId).toBe(clientTrace);
    expect(root.parentSpanId).toBe(clientSpan);
    expect(root.name).toBe('chat llama');
    expect(attr(root, 'gen_ai.operation.name')).toBe('chat');
    expect(attr(root, 'gen_ai.request.model')).toBe('llama');
    expect(attr(root, 'gen_ai.response.model')).toBe('llama');
    expect(attr(root, 'gen_ai.usage.input_tokens')).toBe(5);
    expect(attr(root, 'gen_ai.usage.output_tokens')).toBe(2);
    expect(attr(root, 'http.response.status_code')).toBe(200);
    expect(attr(root, 'llm_gateway.request.id')).toBe(requestId);
    // Attempts: siblings under the request's span, in one trace.
    for (const s of attempts) {
      expect(s.traceId).toBe(clientTrace);
      expect(s.parentSpanId).toBe(root.spanId);
    }
    const failed = attempts.find((s) => attr(s, 'llm_gateway.endpoint') === 'a')!;
    const won = attempts.find((s) => attr(s, 'llm_gateway.endpoint') === 'b')!;
    expect(failed.status?.code).toBe(ERROR);
    expect(attr(failed, 'error.type')).toBe('status_5xx');
    expect(attr(won, 'llm_gateway.outcome')).toBe('success');
    expect(attr(won, 'server.address')).toBe(new URL(b.url).host);
    // Each upstream got a traceparent of its attempt's span.
    expect(a.requests[0]!.headers.traceparent).toBe(`00-${clientTrace}-${failed.spanId}-01`);
    expect(b.requests[0]!.headers.traceparent).toBe(`00-${clientTrace}-${won.spanId}-01`);
  });

  it('protobuf by default; a new trace when the client sent none', async () => {
    const collector = await otlpReceiver(bed);
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({
      endpoints: [{ url: upstream.url, name: 'gpu' }],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/` },
    });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
    });
    await res.text();
    await gw.gateway.tracing!.flush();
    expect(collector.received).toHaveLength(1);
    const [exported] = collector.received;
    expect(exported!.path).toBe('/v1/traces');
    expect(exported!.headers['content-type']).toBe('application/x-protobuf');
    // The span names and attribute keys are in the protobuf as UTF-8.
    expect(exported!.body.includes(Buffer.from('chat llama'))).toBe(true);
    expect(exported!.body.includes(Buffer.from('gen_ai.usage.output_tokens'))).toBe(true);
    const traceparent = String(upstream.requests[0]!.headers.traceparent);
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // The upstream's trace id is the one exported.
    expect(exported!.body.includes(Buffer.from(traceparent.slice(3, 35), 'hex'))).toBe(true);
  });

  it('without OTEL_EXPORTER_OTLP_ENDPOINT nothing is traced: a client’s traceparent passes as it came, none is made up', async () => {
    const upstream = await bed.upstream({ name: 'gpu', models: ['llama'] });
    const gw = await bed.gateway({ endpoints: [{ url: upstream.url, name: 'gpu' }] });
    expect(gw.gateway.tracing).toBeUndefined();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        ...gw.auth,
        'content-type': 'application/json',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'x' }] }),
    });
    await res.text();
    expect(upstream.requests[0]!.headers.traceparent).toBe(
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    );
    const plain = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'y' }] }),
    });
    await plain.text();
    expect(upstream.requests[1]!.headers.traceparent).toBeUndefined();
  });
});
