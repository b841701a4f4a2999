/**
 * The benchmark's model server: as cheap as possible, so that the numbers measure the proxies.
 * POST /v1/chat/completions answers JSON at once, or SSE with CHUNKS chunks CHUNK_DELAY_MS apart;
 * FAIL_STATUS makes every completion fail with that status (the failover scenario's primary).
 */
import http from 'node:http';

const chunks = Number(process.env.CHUNKS ?? 20);
// Requests that carry "pace":true get their chunks CHUNK_DELAY_MS apart, like tokens from a GPU.
const chunkDelayMs = Number(process.env.CHUNK_DELAY_MS ?? 10);
const failStatus = Number(process.env.FAIL_STATUS ?? 0);
// Share of completions that fail with 503 (FAIL_RATE) or die mid-stream (DIE_RATE), for the soak test.
const failRate = Number(process.env.FAIL_RATE ?? 0);
const dieRate = Number(process.env.DIE_RATE ?? 0);
const json = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1,
  model: 'bench-model',
  choices: [
    { index: 0, message: { role: 'assistant', content: 'A short benchmark answer.' }, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 },
});
const event = (i: number) =>
  `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok${i} "},"finish_reason":null}]}\n\n`;
const models = JSON.stringify({ object: 'list', data: [{ id: 'bench-model', object: 'model' }] });

const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    if (req.url?.endsWith('/v1/models')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(models);
      return;
    }
    if (failStatus || Math.random() < failRate) {
      res
        .writeHead(failStatus || 503, { 'content-type': 'application/json' })
        .end('{"error":{"message":"overloaded"}}');
      return;
    }
    const body = Buffer.concat(parts);
    if (!body.includes('"stream":true')) {
      res
        .writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
        .end(json);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let i = 0;
    const delay = body.includes('"pace":true') ? chunkDelayMs : 0;
    const dieAt = Math.random() < dieRate ? Math.floor(chunks / 2) : -1;
    const next = () => {
      if (res.destroyed) return;
      if (i === chunks) return void res.end('data: [DONE]\n\n');
      if (i === dieAt) return void res.destroy();
      res.write(event(i++));
      if (delay > 0) setTimeout(next, delay);
      else setImmediate(next);
    };
    next();
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`LISTENING ${(server.address() as { port: number }).port}`);
});
// Exit normally on SIGTERM, so that a profiled run (npm run bench:profile) writes its profile.
process.on('SIGTERM', () => process.exit(0));
