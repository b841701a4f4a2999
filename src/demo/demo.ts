import { configOrigin, loadConfigFromProcess } from '../config/load-config.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../observability/logger.js';
import { DemoUpstream } from './demo-upstream.js';

/**
 * `npm run demo`: three local demo model servers (fast, slow, flaky) behind the gateway, with no
 * configuration needed. The flaky one fails now and then; watch the gateway fail over.
 */
export const DEMO_MODELS = ['llama-3.1-8b-demo', 'qwen2.5-7b-demo'];
const DEFAULT_DEMO_KEY = 'demo-key';

const FLAKY = { unavailable: 0.2, reset: 0.05, midStream: 0.05 };

/**
 * `timeScale` shrinks every delay (the test suite runs the demo at a twentieth of its speed);
 * `failures` sets how often the flaky server fails.
 */
export async function startDemoUpstreams(
  random?: () => number,
  timeScale = 1,
  failures = FLAKY,
): Promise<DemoUpstream[]> {
  const t = (ms: number) => Math.round(ms * timeScale);
  return Promise.all([
    DemoUpstream.start({
      name: 'gpu-fast',
      models: DEMO_MODELS,
      firstTokenMs: t(80),
      tokenMs: t(25),
      random,
    }),
    DemoUpstream.start({
      name: 'gpu-flaky',
      models: DEMO_MODELS,
      firstTokenMs: t(150),
      tokenMs: t(40),
      failures,
      random,
    }),
    DemoUpstream.start({
      name: 'gpu-slow',
      models: [DEMO_MODELS[0]!],
      firstTokenMs: t(1500),
      tokenMs: t(120),
      random,
    }),
  ]);
}

export function demoEndpoints(upstreams: DemoUpstream[]): string {
  const [fast, flaky, slow] = upstreams;
  return JSON.stringify([
    { name: 'gpu-fast', url: fast!.url, apiKey: 'upstream-key-fast', priority: 1, weight: 3 },
    { name: 'gpu-flaky', url: flaky!.url, apiKey: 'upstream-key-flaky', priority: 1, weight: 1 },
    { name: 'gpu-slow', url: slow!.url, apiKey: 'upstream-key-slow', priority: 2, weight: 1 },
  ]);
}

const DEFAULT_DEMO_ADMIN_KEY = 'demo-admin-key';

async function main(): Promise<void> {
  const upstreams = await startDemoUpstreams();
  const endpoints = demoEndpoints(upstreams);
  const config = loadConfigFromProcess({
    defaults: {
      API_KEY: DEFAULT_DEMO_KEY,
      ADMIN_API_KEY: DEFAULT_DEMO_ADMIN_KEY,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DISCOVERY_INTERVAL_MS: '10000',
      // A database of its own: keys, usage and runtime endpoints of a gateway run from the same
      // directory do not mix with the demo's.
      DATABASE_URL: 'sqlite:data/demo.db',
    },
    overrides: { ENDPOINTS: endpoints, CONFIG_FILE: '' },
  });
  const logger = createLogger({ level: config.logging.level });
  const gateway = new Gateway({ config, logger });
  try {
    await gateway.listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    console.log(`Port ${config.server.port} is busy; using a free port instead.`);
    await gateway.listen(0, '127.0.0.1');
  }
  await gateway.discovery.initialRound();
  const { apiKeys, adminKey } = config.auth;
  console.log(
    banner({
      url: gateway.url,
      // Keys the operator chose (in .env or the environment) are not printed.
      key: apiKeys.includes(DEFAULT_DEMO_KEY) ? DEFAULT_DEMO_KEY : '<your API_KEY>',
      adminKey: adminKey === DEFAULT_DEMO_ADMIN_KEY ? DEFAULT_DEMO_ADMIN_KEY : '<your ADMIN_API_KEY>',
      upstreams,
      endpoints,
      envFile: configOrigin(config)?.envFile,
    }),
  );

  const stop = async () => {
    await gateway.shutdown(2_000);
    await Promise.all(upstreams.map((u) => u.stop()));
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

function banner(b: {
  url: string;
  key: string;
  adminKey: string;
  upstreams: DemoUpstream[];
  endpoints: string;
  envFile: string | undefined;
}): string {
  const { url, key, adminKey } = b;
  const [fast, flaky, slow] = b.upstreams;
  const env = b.envFile
    ? `Read ${b.envFile}: its settings apply, except ENDPOINTS and CONFIG_FILE (the demo sets its own).`
    : 'No .env file in this directory: demo defaults (key demo-key, admin key demo-admin-key, 127.0.0.1).';
  return `
Akash LLM Gateway demo running at ${url}
  ${env}

  Demo model servers (local, generated text):
    gpu-fast   ${fast!.url}   priority 1, weight 3   models: ${DEMO_MODELS.join(', ')}
    gpu-flaky  ${flaky!.url}   priority 1, weight 1   fails now and then (503, reset, dies mid-stream)
    gpu-slow   ${slow!.url}   priority 2 (backup)    models: ${DEMO_MODELS[0]}

  The same servers as an ENDPOINTS line (for a .env of your own, while the demo runs):
    ENDPOINTS=${b.endpoints}

  Try it (-i shows the headers: x-gateway-endpoint says which server answered, x-gateway-attempts
  how many tries it took):
    curl -i ${url}/v1/models -H "Authorization: Bearer ${key}"

    curl -i -N ${url}/v1/chat/completions \\
      -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" \\
      -d '{"model":"${DEMO_MODELS[0]}","stream":true,"messages":[{"role":"user","content":"Hello"}]}'

  The dashboard (endpoints, live traffic, usage, keys, cache): open ${url}/dashboard
  and sign in with the admin key ${adminKey}

  Each server's state (healthy, ejected, cooling down), with the admin key:
    curl -s ${url}/api/v1/providers/status -H "Authorization: Bearer ${adminKey}"
  Readiness, as a load balancer sees it:
    curl -i ${url}/health/readiness

  With the OpenAI SDK (npm install openai; save as demo.mjs, an ES module: it uses import and
  top-level await; run it with node demo.mjs):
    import OpenAI from 'openai';
    const client = new OpenAI({ baseURL: '${url}/v1', apiKey: '${key}' });
    const stream = await client.chat.completions.create({
      model: '${DEMO_MODELS[0]}', stream: true, messages: [{ role: 'user', content: 'Hello' }],
    });
    for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');

  Access logs: LOG_LEVEL=info npm run demo   Stop: Ctrl+C
`;
}

// Run only when started as a program (the test suite imports the helpers above).
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
