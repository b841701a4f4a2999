import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.js';

/** Workers that die this many times within a minute are not restarted again (a crash loop). */
const MAX_RESTARTS_PER_MINUTE = 5;

/**
 * WORKERS=N: the primary forks N gateway workers that share the listening port (node:cluster), restarts
 * a worker that dies, forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to them, and exits
 * when they all have. Each worker keeps its own endpoint health.
 */
export function runPrimary(workers: number, logger: Logger): void {
  let stopping = false;
  const restarts: number[] = [];
  const fork = (): Worker => cluster.fork();
  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers }, 'started gateway workers');

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('all workers stopped');
        process.exit(0);
      }
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

  const forward = (signal: NodeJS.Signals) => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  process.on('SIGHUP', () => forward('SIGHUP'));
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    forward(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
