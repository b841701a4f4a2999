/**
 * `npm run bench:soak`: the gateway under a fixed request rate for SOAK_MINUTES (10) with everything
 * mixed in: JSON answers, paced streams, an upstream that fails 10% of its completions and cuts 5% of
 * its streams mid-way (so failover and continuation run constantly), clients that abort mid-stream, and
 * requests for unknown models. Every SAMPLE_S seconds it records the gateway's RSS, open file
 * descriptors (sockets) and event-loop resources; at the end it checks that RSS grew less than 10% after
 * the warm-up minute and that sockets and handles stayed flat. Only 127.0.0.1 is targeted.
 */
import { Agent, request } from 'undici';
import { AUTH, JSON_BODY, PACED_STREAM_BODY } from './lib/load.js';
import { buildForBench, CORES, fdCount, pinSelf, rssMb, startProcess } from './lib/procs.js';
import { seeded, table } from './lib/stats.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const RATE = Number(process.env.SOAK_RATE ?? 100);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S ?? 15);
const WARMUP_S = Math.min(60, (MINUTES * 60) / 4);
const ADMIN = { authorization: 'Bearer soak-admin' };

buildForBench();
pinSelf(0);
const flaky = await startProcess(
  'flaky',
  'bench/servers/upstream.ts',
  { FAIL_RATE: '0.1', DIE_RATE: '0.05' },
  0,
);
const steady = await startProcess('steady', 'bench/servers/upstream.ts', {}, 0);
const gateway = await startProcess(
  'gateway',
  'src/main.ts',
  {
    API_KEY: 'bench-key',
    ADMIN_API_KEY: 'soak-admin',
    LOG_LEVEL: 'info',
    ENDPOINTS: JSON.stringify([
      { name: 'flaky', url: flaky.url, models: ['bench-model'], weight: 1 },
      { name: 'steady', url: steady.url, models: ['bench-model'], weight: 1 },
    ]),
  },
  CORES > 1 ? 1 : undefined,
);

const agent = new Agent({ connections: 256, keepAliveTimeout: 30_000 });
const random = seeded(99);
const outcomes = { ok: 0, clientAborted: 0, expectedErrors: 0, failed: 0 };

async function one(): Promise<void> {
  const roll = random();
  const stream = roll < 0.4;
  const abort = roll >= 0.4 && roll < 0.45;
  const unknown = roll >= 0.45 && roll < 0.5;
  const controller = new AbortController();
  try {
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: AUTH,
      body: unknown
        ? JSON_BODY.replace('bench-model', 'no-such-model')
        : stream || abort
          ? PACED_STREAM_BODY
          : JSON_BODY,
      signal: controller.signal,
    });
    let text = '';
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString('utf8');
      if (abort && text.length > 200) controller.abort();
    }
    if (unknown) outcomes[res.statusCode === 404 ? 'expectedErrors' : 'failed']++;
    else if (res.statusCode === 200 && (!stream || text.trimEnd().endsWith('data: [DONE]'))) outcomes.ok++;
    else outcomes.failed++;
  } catch {
    if (abort) outcomes.clientAborted++;
    else outcomes.failed++;
  }
}

async function runtimeInfo(): Promise<{ handles: number; heapMb: number }> {
  const res = await request(`${gateway.url}/api/v1/runtime`, { headers: ADMIN, dispatcher: agent });
  const body = (await res.body.json()) as {
    activeResources: Record<string, number>;
    memoryMb: { heapUsed: number };
  };
  return {
    handles: Object.values(body.activeResources).reduce((s, n) => s + n, 0),
    heapMb: body.memoryMb.heapUsed,
  };
}

const samples: Array<{
  t: number;
  rssMb: number;
  fds: number;
  handles: number;
  heapMb: number;
  done: number;
}> = [];
const started = Date.now();
const endAt = started + MINUTES * 60_000;
const pending = new Set<Promise<void>>();
let sent = 0;
let nextSample = started;
const interval = 1000 / RATE;
while (Date.now() < endAt) {
  // Open loop: requests go out on schedule whether or not earlier ones have finished.
  const due = Math.floor((Date.now() - started) / interval);
  while (sent < due) {
    const p = one().finally(() => pending.delete(p));
    pending.add(p);
    sent++;
  }
  if (Date.now() >= nextSample) {
    nextSample += SAMPLE_S * 1000;
    const { handles, heapMb } = await runtimeInfo();
    samples.push({
      t: Math.round((Date.now() - started) / 1000),
      rssMb: rssMb(gateway.pid),
      fds: fdCount(gateway.pid),
      handles,
      heapMb,
      done: outcomes.ok,
    });
    const s = samples.at(-1)!;
    process.stdout.write(
      `t=${s.t}s rss=${s.rssMb.toFixed(1)}MB heap=${s.heapMb}MB fds=${s.fds} handles=${s.handles} ok=${outcomes.ok} failed=${outcomes.failed} in flight=${pending.size}\n`,
    );
  }
  await new Promise((r) => setTimeout(r, 5));
}
await Promise.all(pending);
// At rest: in-flight work is over, so sockets and handles are comparable with the warm-up sample.
await new Promise((r) => setTimeout(r, 1000));
const rest = await runtimeInfo();
const finalSample = {
  t: Math.round((Date.now() - started) / 1000),
  rssMb: rssMb(gateway.pid),
  fds: fdCount(gateway.pid),
  handles: rest.handles,
  heapMb: rest.heapMb,
  done: outcomes.ok,
};

const warm = samples.find((s) => s.t >= WARMUP_S) ?? samples[0]!;
const growth = (100 * (finalSample.rssMb - warm.rssMb)) / warm.rssMb;
const peakRss = Math.max(...samples.map((s) => s.rssMb), finalSample.rssMb);
console.log(
  `\n### Soak: ${MINUTES} min at ${RATE} req/s (40% streams, 5% client aborts, 5% unknown model; one upstream fails 10% and cuts 5% of streams)\n`,
);
console.log(
  table(
    ['t (s)', 'RSS MB', 'heap MB', 'open fds', 'handles', 'ok so far'],
    [...samples, finalSample].map((s) => [String(s.t), s.rssMb, s.heapMb, s.fds, s.handles, s.done]),
  ),
);
console.log(
  `\nrequests: ${sent}, ok ${outcomes.ok}, expected 404s ${outcomes.expectedErrors}, client aborts ${outcomes.clientAborted}, failed ${outcomes.failed}`,
);
console.log(
  table(
    ['check', 'result', 'measured'],
    [
      [
        'RSS growth after warm-up < 10%',
        growth < 10 ? 'PASS' : 'FAIL',
        `${growth.toFixed(1)}% (${warm.rssMb.toFixed(1)} → ${finalSample.rssMb.toFixed(1)} MB, peak ${peakRss.toFixed(1)} MB)`,
      ],
      [
        'open fds flat (at rest vs warm-up)',
        finalSample.fds <= warm.fds + 5 ? 'PASS' : 'FAIL',
        `${warm.fds} → ${finalSample.fds}`,
      ],
      [
        'event-loop handles flat (at rest vs warm-up)',
        finalSample.handles <= warm.handles + 5 ? 'PASS' : 'FAIL',
        `${warm.handles} → ${finalSample.handles}`,
      ],
      ['no failed requests', outcomes.failed === 0 ? 'PASS' : 'FAIL', `${outcomes.failed}`],
    ],
  ),
);
await agent.close();
await Promise.all([gateway.stop(), flaky.stop(), steady.stop()]);
process.exit(0);
