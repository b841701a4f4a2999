/**
 * `npm run bench:instructions`: machine instructions per request (valgrind's callgrind), the gateway
 * against the Express floor. Instruction counts do not move with a noisy neighbour the way CPU time
 * does (a few percent between runs instead of ±10-20% on a shared VM), so this is the A/B tool for
 * changes to the hot path; `npm run bench` still holds the targets, in CPU time.
 *
 * Each target runs under callgrind (about 50x slower), is warmed up with INSTR_WARMUP requests (the
 * JIT settles), then counted over INSTR_REQUESTS requests at 50 connections (JSON), or
 * INSTR_LOAD=streams: 100 concurrent 20-chunk streams. All threads are counted (GC helpers, the
 * thread pool). INSTR_TARGETS: a comma-separated list of gateway, floor-express, floor-node, or
 * paths of other compiled gateways (a .js main, for A/B of a change). INSTR_KEEP: a folder to keep the
 * callgrind dumps in (callgrind.N.out for the Nth target; read them with callgrind_annotate).
 * The target gateway-keys is the gateway called with a virtual key in a team, limited at the key,
 * team and global scopes in Redis (BENCH_REDIS_URL), with the ledger writing: `npm run bench`'s keys
 * scenario, for A/B of changes to the limits' path (`keys:<path>.js`: a compiled variant in that setup).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { authWith, JSON_BODY, streams } from './lib/load.js';
import { createLimitedKey, keysGatewayEnv } from './lib/keys.js';
import { buildForBench, HAS_TASKSET, pinSelf, startProcess, type Proc } from './lib/procs.js';
import { HEAP_GROWING_PERCENT } from '../src/server/runtime-flags.js';

const WARMUP = Number(process.env.INSTR_WARMUP ?? 4000);
const REQUESTS = Number(process.env.INSTR_REQUESTS ?? 3000);
const LOAD = process.env.INSTR_LOAD ?? 'closed';
const TARGETS = (process.env.INSTR_TARGETS ?? 'floor-express,gateway').split(',');

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(1);
}
buildForBench();
pinSelf(0);
const upstream = await startProcess('upstream', 'bench/servers/upstream.ts', {}, 0);

async function load(p: Proc, count: number, key?: string): Promise<void> {
  if (LOAD === 'streams') {
    const r = await streams(p.url, {
      concurrency: 100,
      count: Math.max(100, count / 10),
      chunks: 20,
      key,
    });
    if (r.bad > 0) throw new Error(`${p.name}: ${r.bad} bad streams`);
    return;
  }
  const r = await autocannon({
    url: `${p.url}/v1/chat/completions`,
    method: 'POST',
    headers: authWith(key),
    body: JSON_BODY,
    connections: 50,
    amount: count,
    timeout: 60,
  });
  if (r.non2xx + r.errors > 0) throw new Error(`${p.name}: ${r.non2xx + r.errors} failed requests`);
}

/** The dump's text once callgrind has written all of it (the dump happens when the process next runs). */
async function dumped(file: string): Promise<string> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (/^totals:/m.test(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`callgrind wrote no dump to ${file}`);
}

function callgrind(pid: number, flag: '-z' | '-d'): void {
  const r = spawnSync('callgrind_control', [flag, String(pid)], {
    encoding: 'utf8',
    // vgdb finds the process by pipes named after USER and HOST, as the process saw them (startProcess
    // sets HOST to the listening address).
    env: { ...process.env, USER: os.userInfo().username, HOST: '127.0.0.1' },
  });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag}: ${r.stderr}`);
}

async function count(target: string): Promise<number> {
  const out = path.join(os.tmpdir(), `gateway-instructions-${process.pid}-${TARGETS.indexOf(target)}.out`);
  // `keys:<path>.js`: a compiled variant in the gateway-keys setup.
  const keyed = target.startsWith('keys:') ? target.slice('keys:'.length) : undefined;
  const variant = target.endsWith('.js');
  const keys = target === 'gateway-keys' || keyed !== undefined;
  const gateway = target === 'gateway' || target === 'gateway-keys';
  const script = gateway ? 'src/main.ts' : (keyed ?? (variant ? target : `bench/servers/${target}.ts`));
  const keysDir = keys ? mkdtempSync(path.join(os.tmpdir(), 'instr-keys-')) : undefined;
  const p = await startProcess(
    target,
    script,
    {
      ...(keysDir
        ? keysGatewayEnv(
            keysDir,
            process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
            `instr-${process.pid}:`,
          )
        : {}),
      USER: os.userInfo().username,
      UPSTREAM_URL: upstream.url,
      API_KEY: 'bench-key',
      LOG_LEVEL: 'info',
      ENDPOINTS: JSON.stringify([{ name: 'upstream', url: upstream.url, models: ['bench-model'] }]),
    },
    HAS_TASKSET ? 1 : undefined,
    gateway || variant ? [] : [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`],
    {
      wrapper: ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', `--callgrind-out-file=${out}`],
      startTimeoutMs: 120_000,
    },
  );
  try {
    const key = keys ? await createLimitedKey(p.url) : undefined;
    await load(p, WARMUP, key);
    callgrind(p.pid, '-z');
    await load(p, REQUESTS, key);
    // The counts since the zeroing, written to `${out}.1`.
    callgrind(p.pid, '-d');
    const text = await dumped(`${out}.1`);
    const total = /^totals:\s+(\d+)/m.exec(text);
    if (!total) throw new Error('no totals in the callgrind output');
    return Number(total[1]) / (LOAD === 'streams' ? Math.max(100, REQUESTS / 10) : REQUESTS);
  } finally {
    await p.stop();
    // INSTR_KEEP=dir keeps the dump of the counted requests (for callgrind_annotate).
    if (process.env.INSTR_KEEP && existsSync(`${out}.1`)) {
      copyFileSync(`${out}.1`, path.join(process.env.INSTR_KEEP, `callgrind.${TARGETS.indexOf(target)}.out`));
    }
    for (const file of [out, `${out}.1`]) rmSync(file, { force: true });
    if (keysDir) rmSync(keysDir, { recursive: true, force: true });
  }
}

const results: Record<string, number> = {};
for (const target of TARGETS) {
  results[target] = await count(target);
  console.log(
    `${target}: ${(results[target] / 1e6).toFixed(3)} M instructions per ${LOAD === 'streams' ? 'stream' : 'request'}`,
  );
}
if (results.gateway !== undefined && results['floor-express'] !== undefined) {
  console.log(`ratio gateway / floor-express: ${(results.gateway / results['floor-express']).toFixed(3)}`);
}
await upstream.stop();
process.exit(0);
