/**
 * The floor of our stack: Express 5 + undici, nothing else. Raw body in, one upstream, response piped
 * back. The gateway is measured against this.
 */
import express from 'express';
import { Pool } from 'undici';

const upstream = new Pool(process.env.UPSTREAM_URL!, { connections: 256, keepAliveTimeout: 60_000 });
const app = express();
app.use(express.raw({ type: () => true, limit: '10mb' }));
app.all('/*path', async (req, res) => {
  try {
    const up = await upstream.request({
      method: req.method,
      path: req.originalUrl,
      headers: { 'content-type': 'application/json' },
      body: Buffer.isBuffer(req.body) && req.body.length > 0 ? req.body : null,
    });
    res.status(up.statusCode);
    const type = up.headers['content-type'];
    if (type) res.setHeader('content-type', type);
    for await (const chunk of up.body) res.write(chunk);
    res.end();
  } catch {
    if (!res.headersSent) res.status(502).json({ error: { message: 'upstream error' } });
    else res.destroy();
  }
});
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`LISTENING ${(server.address() as { port: number }).port}`);
});
server.keepAliveTimeout = 60_000;
// Exit normally on SIGTERM, so that a profiled run (npm run bench:profile) writes its profile.
process.on('SIGTERM', () => process.exit(0));
