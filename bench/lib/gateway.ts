import { Writable } from 'node:stream';
import { loadConfig, type Env } from '../../src/config/load-config.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';

export const BENCH_KEY = 'bench-key';

/** A gateway in this process with logs discarded, configured through the real loader. */
export async function startBenchGateway(env: Env, random?: () => number): Promise<Gateway> {
  const config = loadConfig({
    env: {
      API_KEY: BENCH_KEY,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DATABASE_URL: 'sqlite::memory:',
      ...env,
    },
  });
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const gateway = new Gateway({ config, logger: createLogger({ level: 'warn', stream: sink }), random });
  await gateway.listen(0, '127.0.0.1');
  await gateway.discovery.initialRound();
  return gateway;
}
