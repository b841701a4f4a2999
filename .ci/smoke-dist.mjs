// Starts the built gateway (`node dist/main.js`) against a tiny local upstream, checks health, models
// and one completion, then stops it with SIGTERM and expects a clean exit. Bounded to 20 s.
import { spawn } from 'node:child_process';
import http from 'node:http';

const upstream = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/v1/models')
    return res.end(JSON.stringify({ object: 'list', data: [{ id: 'smoke-model' }] }));
  req.resume();
  req.on('end', () =>
    res.end(
      JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      }),
    ),
  );
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const probe = http.createServer();
await new Promise((r) => probe.listen(0, '127.0.0.1', r));
const port = probe.address().port;
await new Promise((r) => probe.close(r));

const child = spawn(process.execPath, ['dist/main.js'], {
  env: {
    PATH: process.env.PATH,
    PORT: String(port),
    HOST: '127.0.0.1',
    API_KEY: 'smoke-key',
    ENDPOINTS: JSON.stringify([{ url: `http://127.0.0.1:${upstream.address().port}`, name: 'smoke' }]),
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const killer = setTimeout(() => {
  console.error('smoke: timed out');
  child.kill('SIGKILL');
  process.exit(1);
}, 20_000);
const base = `http://127.0.0.1:${port}`;
await new Promise((resolve) => child.stdout.on('data', (d) => String(d).includes('listening') && resolve()));
for (let i = 0; i < 100; i++) {
  const r = await fetch(`${base}/health/readiness`).catch(() => undefined);
  if (r?.ok) break;
  await new Promise((r) => setTimeout(r, 50));
}
const auth = { authorization: 'Bearer smoke-key', 'content-type': 'application/json' };
const models = await (await fetch(`${base}/v1/models`, { headers: auth })).json();
const done = await fetch(`${base}/v1/chat/completions`, {
  method: 'POST',
  headers: auth,
  body: JSON.stringify({ model: 'smoke-model', messages: [{ role: 'user', content: 'hi' }] }),
});
const answer = await done.json();
// The dashboard's files are copied into dist/ by the build.
const page = await fetch(`${base}/dashboard`);
const script = await fetch(`${base}/dashboard/dashboard.js`);
const dashboardOk =
  page.status === 200 && script.status === 200 && (await page.text()).includes('dashboard.js');
const exited = new Promise((r) => child.once('exit', r));
child.kill('SIGTERM');
const code = await exited;
clearTimeout(killer);
upstream.close();
if (
  models.data?.[0]?.id !== 'smoke-model' ||
  answer.choices?.[0]?.message?.content !== 'ok' ||
  !dashboardOk ||
  code !== 0
) {
  console.error('smoke: FAILED', { models, answer, dashboard: [page.status, script.status], code });
  process.exit(1);
}
console.log('smoke: dist/main.js served /v1/models, a completion and the dashboard, and exited 0 on SIGTERM');
