import { watchConfigFile } from '../config/config-watcher.js';
import { loadConfigFromProcess } from '../config/load-config.js';
import type { GatewayConfig } from '../config/types.js';
import { Gateway } from '../gateway.js';
import type { Logger } from '../observability/logger.js';

/**
 * Runs one gateway in this process until SIGTERM/SIGINT: listen, reload on SIGHUP or a changed
 * CONFIG_FILE, and stop gracefully.
 */
export async function runGateway(config: GatewayConfig, logger: Logger): Promise<void> {
  const gateway = new Gateway({ config, logger, loadConfig: () => loadConfigFromProcess() });

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

  const reload = (trigger: string): void => {
    try {
      gateway.reloadFromSource();
    } catch {
      // Already logged with every problem; the old configuration stays in force.
    }
    logger.debug({ trigger }, 'reload handled');
  };

  const stopWatching = config.configFile
    ? watchConfigFile(config.configFile, () => reload('config file changed'))
    : undefined;
  process.on('SIGHUP', () => reload('SIGHUP'));
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
      {
        address: `${address.address}:${address.port}`,
        endpoints: config.endpoints.map((e) => ({ name: e.name, priority: e.priority, weight: e.weight })),
        auth: config.auth.disabled ? 'disabled' : `${config.auth.apiKeys.length} key(s)`,
      },
      'akash llm gateway listening',
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason =
      e.code === 'EADDRINUSE'
        ? `port ${config.server.port} on ${config.server.host} is already in use (set PORT to another one)`
        : e.code === 'EACCES'
          ? `no permission to listen on port ${config.server.port} (use a port above 1024)`
          : e.message;
    logger.fatal({ code: e.code }, `could not start listening: ${reason}`);
    console.error(`Could not start listening: ${reason}`);
    process.exit(1);
  }
}
