/**
 * `npm run bench:slow-readers`: the memory a gateway needs for many clients that read long streams
 * slowly (issue 9, part 3). SLOW_CLIENTS clients (300) each stream an answer of SLOW_ANSWER_KB of text
 * (2048) from a fast upstream and read it at about SLOW_READ_KBPS (100) each, so the answers flow for a
 * while and every stream keeps what continuation needs. The gateway's peak RSS is reported with
 * continuation on (its transcripts bounded by CONTINUATION_MAX_BYTES and CONTINUATION_BUDGET_BYTES) and
 * off, and for SLOW_BASELINE (a compiled main.js of another build) when given.
 */
import http from 'node:http';
import { once } from 'node:events';
import { request } from 'undici';
import { buildForBench, peakRssMb, rssMb, startProcess, type Proc } from './lib/procs.js';

const CLIENTS = Number(process.env.SLOW_CLIENTS ?? 300);
const ANSWER_KB = Number(process.env.SLOW_ANSWER_KB ?? 2048);
const READ_KBPS = Number(process.env.SLOW_READ_KBPS ?? 100);
const BASELINE = process.env.SLOW_BASELINE;

buildForBench();

// An upstream that writes a long answer as fast as the gateway takes it: 1 KiB of text per event.
const text = 'x'.repeat(1023) + ' ';
const event = `data: {"id":"chatcmpl-slow","object":"chat.completion.chunk","created":1,"model":"bench-model","choices":[{"index":0,"delta":{"content":"${text}"},"finish_reason":null}]}\n\n`;
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url?.endsWith('/v1/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object":"list","data":[{"id":"bench-model","object":"model"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let sent = 0;
    const more = () => {
      while (sent < ANSWER_KB) {
        sent++;
        if (!res.write(event)) return void res.once('drain', more);
      }
      res.end('data: [DONE]\n\n');
    };
    more();
  });
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;

/** One client: streams the answer and reads it at READ_KBPS, in 16 KiB steps. */
async function slowClient(url: string): Promise<number> {
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer bench-key-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench-model', stream: true, messages: [{ role: 'user', content: 'go' }] }),
    highWaterMark: 16 * 1024,
  });
  let bytes = 0;
  let budget = 0;
  for await (const chunk of res.body) {
    bytes += (chunk as Buffer).length;
    budget += (chunk as Buffer).length;
    if (budget >= 16 * 1024) {
      await new Promise((r) => setTimeout(r, (budget / 1024 / READ_KBPS) * 1000));
      budget = 0;
    }
  }
  return bytes;
}

async function run(name: string, proc: Proc): Promise<string> {
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(proc.pid))), 100);
  const started = performance.now();
  const sizes = await Promise.all(Array.from({ length: CLIENTS }, () => slowClient(proc.url)));
  clearInterval(sampler);
  const complete = sizes.filter((b) => b >= ANSWER_KB * 1024).length;
  const row = `| ${name} | ${CLIENTS} | ${complete} | ${Math.round((performance.now() - started) / 1000)} | ${Math.round(Math.max(peak, peakRssMb(proc.pid)))} |`;
  await proc.stop();
  return row;
}

const env = (extra: Record<string, string>) => ({
  API_KEY: 'bench-key-0123456789',
  ENDPOINTS: JSON.stringify([{ name: 'up', url: upstreamUrl, models: ['bench-model'] }]),
  LOG_LEVEL: 'warn',
  ...extra,
});
const rows: string[] = [];
rows.push(await run('continuation on (defaults)', await startProcess('on', 'src/main.ts', env({}))));
rows.push(
  await run('continuation off', await startProcess('off', 'src/main.ts', env({ CONTINUATION: 'false' }))),
);
if (BASELINE) {
  // Another compiled build (for example the code before the bounds), run as it is.
  const proc = await startProcess('baseline', BASELINE, env({}));
  rows.push(await run(`baseline ${BASELINE}`, proc));
}
console.log(`${CLIENTS} clients reading ${ANSWER_KB} KiB answers at about ${READ_KBPS} KiB/s each`);
console.log('| gateway | streams | complete | seconds | peak RSS MB |');
console.log('|:--|--:|--:|--:|--:|');
for (const row of rows) console.log(row);
upstream.close();
upstream.closeAllConnections();
