/**
 * The benchmark's model server process (the shared simulated one of src/demo/model-server.ts), as cheap
 * as it can be so that the numbers measure the proxies: answers are built once and relayed as they are.
 * POST /v1/chat/completions answers JSON at once, or SSE with CHUNKS chunks (CHUNK_DELAY_MS apart when
 * the request carries "pace":true, like tokens from a GPU); FAIL_STATUS makes every completion fail with
 * that status (the failover scenario's primary); FAIL_RATE and DIE_RATE fail that share with a 503 or
 * a death mid-stream (the soak test).
 */
import { ModelServer } from '../../src/demo/model-server.js';

const chunks = Number(process.env.CHUNKS ?? 20);
const chunkDelayMs = Number(process.env.CHUNK_DELAY_MS ?? 10);
const failStatus = Number(process.env.FAIL_STATUS ?? 0);
const failRate = Number(process.env.FAIL_RATE ?? 0);
const dieRate = Number(process.env.DIE_RATE ?? 0);
const text = Array.from({ length: chunks }, (_, i) => `tok${i}`).join(' ');

const server = await ModelServer.start({
  name: 'bench-upstream',
  models: ['bench-model'],
  port: Number(process.env.PORT ?? 0),
  respond: ({ json, stream }) => {
    if (failStatus || Math.random() < failRate)
      return { type: 'status', status: failStatus || 503, body: { error: { message: 'overloaded' } } };
    return {
      type: 'answer',
      text,
      tokenMs: stream && json?.pace === true ? chunkDelayMs : undefined,
      dieAfterWords: stream && Math.random() < dieRate ? Math.floor(chunks / 2) : undefined,
    };
  },
});
console.log(`LISTENING ${server.port}`);
// Exit normally on SIGTERM, so that a profiled run (npm run bench:profile) writes its profile.
process.on('SIGTERM', () => process.exit(0));
