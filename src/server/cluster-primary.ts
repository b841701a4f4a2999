import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { GatewayConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { TrafficInterval } from '../observability/traffic-history.js';
import { logConfigWarnings, startupFacts } from './startup-log.js';
import {
  EXIT_NOT_RESTARTABLE,
  isMessage,
  type ToPrimary,
  type ToWorker,
  type WorkerReload,
} from './worker-messages.js';

/** Workers that die this many times within a minute are not restarted again (a crash loop). */
const MAX_RESTARTS_PER_MINUTE = 5;
/** How long a reload waits for every worker's answer. */
const RELOAD_WAIT_MS = 10_000;
/** How long the dashboard's traffic waits for every worker's history (a busy worker is left out). */
const TRAFFIC_WAIT_MS = 2_000;

/**
 * WORKERS=N: the primary forks N gateway workers that share the listening port (node:cluster), logs
 * `started` once they all listen, restarts a worker that dies, stops at once when a worker cannot
 * listen (a busy port does not get better by restarting), reloads every worker on SIGHUP or when one
 * worker's admin route asks, forwards SIGTERM/SIGINT (graceful stop), and exits when they all have.
 * Each worker keeps its own endpoint health.
 */
export function runPrimary(config: GatewayConfig, logger: Logger): void {
  const workers = config.server.workers;
  let stopping = false;
  let started = false;
  const restarts: number[] = [];
  const listening = new Set<number>();
  logConfigWarnings(config, logger);
  const fork = (): Worker => cluster.fork();
  for (let i = 0; i < workers; i++) fork();

  const pending = new Map<number, { waiting: Set<number>; results: WorkerReload[]; done: () => void }>();
  const traffic = new Map<
    number,
    { waiting: Set<number>; processes: TrafficInterval[][]; done: () => void }
  >();
  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);

  cluster.on('listening', (worker, address) => {
    listening.add(worker.id);
    if (started || listening.size < workers) return;
    started = true;
    logger.info(
      {
        ...startupFacts(config, `${address.address ?? config.server.host}:${address.port}`),
        workers,
        pids: live().map((w) => w.process.pid),
      },
      'started gateway workers',
    );
  });

  const fatal = (message: string) => {
    if (stopping) return;
    stopping = true;
    logger.fatal(message);
    console.error(message);
    for (const w of live()) w.process.kill('SIGKILL');
    process.exit(1);
  };

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    for (const entry of [...pending.values(), ...traffic.values()]) {
      if (entry.waiting.delete(worker.id) && entry.waiting.size === 0) entry.done();
    }
    if (stopping) {
      if (live().length === 0) {
        logger.info('all workers stopped');
        process.exit(0);
      }
      return;
    }
    if (code === EXIT_NOT_RESTARTABLE) {
      fatal(`worker ${worker.process.pid} cannot start: stopping the gateway`);
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      logger.fatal({ pid: worker.process.pid, code, signal }, 'workers keep dying: giving up');
      process.exit(1);
    }
    logger.error({ pid: worker.process.pid, code, signal }, 'worker died: starting a new one');
    fork();
  });

  // Reloads: every live worker reloads; the answers go back to the worker that asked, if one did.
  let nextId = 1;
  const reloadAll = (requester?: Worker, requestId?: number) => {
    const id = nextId++;
    const targets = live();
    const results: WorkerReload[] = [];
    const timer = setTimeout(() => finish(), RELOAD_WAIT_MS);
    const finish = () => {
      clearTimeout(timer);
      pending.delete(id);
      if (requester && requestId !== undefined && requester.isConnected())
        requester.send({ type: 'gateway:reload-all-done', id: requestId, results } satisfies ToWorker);
    };
    pending.set(id, { waiting: new Set(targets.map((w) => w.id)), results, done: finish });
    for (const w of targets) w.send({ type: 'gateway:reload', id } satisfies ToWorker);
  };

  // One scrape, every worker: prom-client's aggregator asks each worker for its registry and sums them.
  const aggregator = new AggregatorRegistry();
  const metricsFor = (worker: Worker, id: number) => {
    aggregator.clusterMetrics().then(
      (text) =>
        worker.isConnected() && worker.send({ type: 'gateway:metrics-done', id, text } satisfies ToWorker),
      (err: unknown) =>
        worker.isConnected() &&
        worker.send({ type: 'gateway:metrics-done', id, error: (err as Error).message } satisfies ToWorker),
    );
  };

  // The dashboard's traffic: every worker's history, sent back to the worker that asked.
  const trafficFor = (requester: Worker, requestId: number) => {
    const id = nextId++;
    const targets = live();
    const processes: TrafficInterval[][] = [];
    const finish = () => {
      clearTimeout(timer);
      traffic.delete(id);
      if (requester.isConnected())
        requester.send({ type: 'gateway:traffic-done', id: requestId, processes } satisfies ToWorker);
    };
    const timer = setTimeout(finish, TRAFFIC_WAIT_MS);
    traffic.set(id, { waiting: new Set(targets.map((w) => w.id)), processes, done: finish });
    for (const w of targets) w.send({ type: 'gateway:traffic-collect', id } satisfies ToWorker);
  };

  cluster.on('message', (worker, message: unknown) => {
    if (!isMessage<ToPrimary>(message)) return;
    if (message.type === 'gateway:fatal') fatal(message.message);
    else if (message.type === 'gateway:traffic') trafficFor(worker, message.id);
    else if (message.type === 'gateway:traffic-collected') {
      const entry = traffic.get(message.id);
      if (!entry || !entry.waiting.delete(worker.id)) return;
      entry.processes.push(message.intervals);
      if (entry.waiting.size === 0) entry.done();
    } else if (message.type === 'gateway:metrics') metricsFor(worker, message.id);
    else if (message.type === 'gateway:reload-all') reloadAll(worker, message.id);
    else if (message.type === 'gateway:reloaded') {
      const entry = pending.get(message.id);
      if (!entry || !entry.waiting.delete(worker.id)) return;
      entry.results.push(message.result);
      if (entry.waiting.size === 0) entry.done();
    }
  });

  process.on('SIGHUP', () => reloadAll());
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    for (const w of live()) w.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
