import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { watchConfigFile } from '../config/config-watcher.js';
import { configOrigin, loadConfigFromProcess } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';
import { GatewayError, InvalidConfigReloadError, ReloadUnavailableError } from '../errors/gateway-error.js';
import { Gateway, StartupError } from '../gateway.js';
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

/**
 * Runs one gateway in this process until SIGTERM/SIGINT: listen, reload on SIGHUP or a changed
 * CONFIG_FILE, and stop gracefully. As a cluster worker, reloads go through the primary so that they
 * reach every worker.
 */
export async function runGateway(config: GatewayConfig, logger: Logger): Promise<void> {
  const worker = cluster.isWorker;
  const gateway = new Gateway({
    config,
    logger,
    loadConfig: reloadableConfig,
    reloadAll: worker ? reloadThroughPrimary : undefined,
    metricsText: worker ? metricsThroughPrimary : undefined,
    trafficOfAll: worker ? trafficThroughPrimary : undefined,
  });
  if (worker) {
    // Answers the primary's aggregator with this worker's registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([gateway.metrics.registry]);
    // Answers the primary's collection of every worker's traffic history (the dashboard).
    process.on('message', (message: unknown) => {
      if (isMessage<ToWorker>(message) && message.type === 'gateway:traffic-collect')
        process.send?.({
          type: 'gateway:traffic-collected',
          id: message.id,
          intervals: gateway.traffic.intervals(),
        } satisfies ToPrimary);
    });
  }
  if (!worker) logConfigWarnings(config, logger);

  let stopping = false;
  const stop = async (signal: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const graceMs = gateway.config.current.server.shutdownGraceMs;
    logger.info({ signal, graceMs }, 'shutting down: finishing in-flight requests');
    stopWatching?.();
    try {
      await gateway.shutdown(graceMs);
    } finally {
      logger.info('stopped');
      process.exit(code);
    }
  };

  const reload = (trigger: string): WorkerReload => {
    try {
      const summary = gateway.reloadFromSource();
      logger.debug({ trigger }, 'reload handled');
      return { pid: process.pid, ok: true, summary };
    } catch (err) {
      // Already logged with every problem; the old configuration stays in force.
      const e = err instanceof GatewayError ? err : undefined;
      return {
        pid: process.pid,
        ok: false,
        code: e?.code ?? 'internal_error',
        message: e?.message ?? String(err),
        problems: err instanceof InvalidConfigReloadError ? err.problems : undefined,
      };
    }
  };

  // In a cluster the primary watches nothing: each worker watches the file (its own reload).
  const stopWatching = gateway.config.current.configFile
    ? watchConfigFile(gateway.config.current.configFile, () => reload('config file changed'))
    : undefined;
  if (worker) {
    process.on('message', (message: unknown) => {
      if (!isMessage<ToWorker>(message) || message.type !== 'gateway:reload') return;
      process.send?.({
        type: 'gateway:reloaded',
        id: message.id,
        result: reload('primary'),
      } satisfies ToPrimary);
    });
  } else {
    process.on('SIGHUP', () => reload('SIGHUP'));
  }
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    void stop('uncaughtException', 1);
  });

  try {
    const address = await gateway.listen();
    logger.info(
      startupFacts(gateway.config.current, `${address.address}:${address.port}`),
      'akash llm gateway listening',
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const { port, host } = gateway.config.current.server;
    const reason =
      e.code === 'EADDRINUSE'
        ? `port ${port} on ${host} is already in use (set PORT to another one)`
        : e.code === 'EACCES'
          ? `no permission to listen on port ${port} (use a port above 1024)`
          : e.code === 'EADDRNOTAVAIL'
            ? `HOST ${host} is not an address of this machine`
            : e.message;
    const message =
      err instanceof StartupError ? `could not start: ${e.message}` : `could not start listening: ${reason}`;
    logger.fatal({ code: e.code }, message);
    if (worker) {
      // A restart would fail the same way: the primary stops the gateway instead.
      const fatal: ToPrimary = { type: 'gateway:fatal', message };
      process.send?.(fatal, undefined, {}, () => process.exit(EXIT_NOT_RESTARTABLE));
      return;
    }
    console.error(message.charAt(0).toUpperCase() + message.slice(1));
    process.exit(1);
  }
}

/**
 * The configuration read again for a reload: `.env` and CONFIG_FILE are read anew. A gateway with
 * neither has nothing a reload could change (a process cannot read its environment again): that is
 * said, rather than answering "nothing changed".
 */
function reloadableConfig(): GatewayConfig {
  const next = loadConfigFromProcess();
  const origin = configOrigin(next);
  if (!origin?.configFile && !origin?.envFile)
    throw new ReloadUnavailableError(
      'This gateway is configured by environment variables only (no CONFIG_FILE, no .env file in its ' +
        'directory), and a running process cannot read its environment again: restart it to apply a ' +
        'new configuration, or use a CONFIG_FILE or .env file, which a reload reads again.',
    );
  return next;
}

/** The primary's answers a worker waits for, by the type of the question. */
type Answer = Extract<
  ToWorker,
  { type: 'gateway:reload-all-done' | 'gateway:metrics-done' | 'gateway:traffic-done' }
>;
const ANSWERS: ReadonlySet<string> = new Set<Answer['type']>([
  'gateway:reload-all-done',
  'gateway:metrics-done',
  'gateway:traffic-done',
]);
const asked = new Map<number, (answer: Answer) => void>();
let nextQuestionId = 1;

/** Asks the primary (every worker's reload, metrics or traffic) and resolves with its answer. */
function askPrimary(type: 'gateway:reload-all' | 'gateway:metrics' | 'gateway:traffic'): Promise<Answer> {
  // One listener while any question is open.
  if (asked.size === 0) process.on('message', onAnswer);
  const id = nextQuestionId++;
  return new Promise((resolve) => {
    asked.set(id, resolve);
    process.send?.({ type, id } satisfies ToPrimary);
  });
}

function onAnswer(message: unknown): void {
  if (!isMessage<ToWorker>(message) || !ANSWERS.has(message.type)) return;
  const answer = message as Answer;
  asked.get(answer.id)?.(answer);
  asked.delete(answer.id);
  if (asked.size === 0) process.off('message', onAnswer);
}

/** The admin route of a worker: the primary reloads every worker and sends back their answers. */
async function reloadThroughPrimary(): Promise<WorkerReload[]> {
  const answer = await askPrimary('gateway:reload-all');
  return answer.type === 'gateway:reload-all-done' ? answer.results : [];
}

/** Every worker's metrics, summed by the primary (one scrape of any worker shows the whole gateway). */
async function metricsThroughPrimary(): Promise<string> {
  const answer = await askPrimary('gateway:metrics');
  if (answer.type !== 'gateway:metrics-done') return '';
  if (answer.error !== undefined) throw new Error(`metrics of the workers: ${answer.error}`);
  return answer.text ?? '';
}

/** Every worker's traffic history, collected by the primary (the dashboard shows the whole gateway). */
async function trafficThroughPrimary(): Promise<TrafficInterval[][]> {
  const answer = await askPrimary('gateway:traffic');
  return answer.type === 'gateway:traffic-done' ? answer.processes : [];
}
