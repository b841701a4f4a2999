/** The floor of Node itself: node:http + undici, piping a request to one upstream and back. */
import http from 'node:http';
import { Pool } from 'undici';

const upstream = new Pool(process.env.UPSTREAM_URL!, { connections: 256, keepAliveTimeout: 60_000 });
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    upstream
      .request({
        method: req.method as 'POST',
        path: req.url ?? '/',
        headers: { 'content-type': 'application/json' },
        body: parts.length > 0 ? Buffer.concat(parts) : null,
      })
      .then(async (up) => {
        res.writeHead(up.statusCode, {
          'content-type': String(up.headers['content-type'] ?? 'application/json'),
        });
        for await (const chunk of up.body) res.write(chunk);
        res.end();
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`LISTENING ${(server.address() as { port: number }).port}`);
});
// Exit normally on SIGTERM, so that a profiled run (npm run bench:profile) writes its profile.
process.on('SIGTERM', () => process.exit(0));
