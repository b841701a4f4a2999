import cluster from 'node:cluster';
import { tuneHeap } from './server/runtime-flags.js';
import { runPrimary } from './server/cluster-primary.js';
import { checkConfig, problemReport } from './server/check-config.js';
import { ConfigError, loadConfigFromProcess } from './config/load-config.js';
import type { GatewayConfig } from './config/types.js';
import { createLogger, LogFileError, type Logger } from './observability/logger.js';
import { runGateway } from './server/run-gateway.js';

function loadOrExit(): GatewayConfig {
  try {
    return loadConfigFromProcess();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(problemReport(err));
      process.exit(1);
    }
    throw err;
  }
}

function loggerOrExit(config: GatewayConfig): Logger {
  try {
    return createLogger({
      level: config.logging.level,
      pid: config.server.workers > 1,
      file: config.logging.file ? { path: config.logging.filePath } : undefined,
    });
  } catch (err) {
    console.error(err instanceof LogFileError ? err.message : err);
    process.exit(1);
  }
}

if (process.argv.includes('--check-config')) {
  process.exit(checkConfig(process.argv));
}
tuneHeap();
const config = loadOrExit();
const logger = loggerOrExit(config);
if (config.server.workers > 1 && cluster.isPrimary) runPrimary(config, logger);
else await runGateway(config, logger);
