/**
 * `npm run bench:chaos`: the chaos run of issue 9 at scale. Three endpoints, one failing a third of
 * its requests with every fault a model server on a cheap lease shows (see test/helpers/chaos.ts),
 * thousands of requests from the openai SDK (70% streams, 10% with 600 junk headers). Prints what the
 * clients got and exits 1 unless every answer arrived whole.
 *
 * CHAOS_REQUESTS (3000), CHAOS_CONCURRENCY (32), CHAOS_SEED (9).
 */
import { runChaos } from '../test/helpers/chaos.js';

const requests = Number(process.env.CHAOS_REQUESTS ?? 3000);
const concurrency = Number(process.env.CHAOS_CONCURRENCY ?? 32);
const seed = Number(process.env.CHAOS_SEED ?? 9);

const r = await runChaos({ requests, concurrency, seed });
const faults = Object.entries(r.faults).sort(([a], [b]) => a.localeCompare(b));
const injected = faults.reduce((sum, [, n]) => sum + n, 0);
console.log(
  `chaos: ${requests} requests (${r.streams} streams), concurrency ${concurrency}, seed ${seed}, ${r.durationMs} ms`,
);
console.log(`faults injected by the failing endpoint: ${injected}`);
for (const [fault, n] of faults) console.log(`  ${fault.padEnd(24)} ${n}`);
console.log('');
console.log('| answers | count |');
console.log('|:--|--:|');
console.log(`| whole | ${r.whole} |`);
console.log(`| corrupted (no error, wrong text) | ${r.corrupted.length} |`);
console.log(`| unreadable (client could not parse) | ${r.unreadable.length} |`);
console.log(`| client-visible errors | ${r.visibleErrors.length} |`);
for (const line of [
  ...r.corrupted.map((c) => `${c.prompt}: ${c.got}`),
  ...r.unreadable,
  ...r.visibleErrors,
].slice(0, 10))
  console.log(`  ${line}`);
process.exit(r.whole === requests ? 0 : 1);
