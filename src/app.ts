import express, { Router, type RequestHandler } from 'express';
import type { ConfigSource } from './config/config-store.js';
import { InvalidRequestError, NotFoundError } from './errors/gateway-error.js';
import {
  chatCompletions,
  COMPLETIONS_ROUTE,
  EMBEDDINGS_ROUTE,
  type ChatDeps,
} from './http/controllers/chat-completions.js';
import { liveness, readiness } from './http/controllers/health.js';
import { getModel, listModels } from './http/controllers/models.js';
import { providersStatus } from './http/controllers/providers-status.js';
import { runtime } from './http/controllers/runtime.js';
import { claimRoute, jsonBody, keyRoutes } from './http/controllers/keys.js';
import { ownUsage, usageRoutes } from './http/controllers/usage.js';
import { accessLog } from './http/middleware/access-log.js';
import { bearerAuth } from './http/middleware/auth.js';
import { cors } from './http/middleware/cors.js';
import { errorHandler, notFound } from './http/middleware/error-handler.js';
import { rawBody } from './http/middleware/raw-body.js';
import type { Logger } from './observability/logger.js';
import type { CompletionService } from './services/completion/completion-service.js';
import type { EndpointRegistry } from './services/endpoints/registry.js';
import type { ClaimService } from './services/keys/claim-service.js';
import type { KeyService } from './services/keys/key-service.js';
import type { Limiter } from './services/limits/limiter.js';
import type { UsageRecorder } from './http/usage-recorder.js';
import type { UsageLedger } from './services/usage/ledger.js';
import type { ResponseCache } from './services/cache/response-cache.js';
import type { GatewayMetrics } from './observability/metrics.js';
import type { Tracing } from './observability/tracing.js';
import type { TrafficView } from './observability/traffic-history.js';
import type { RuntimeEndpoints } from './services/endpoints/runtime-endpoints.js';
import { endpointRoutes } from './http/controllers/endpoints.js';
import { bareKeyAsBearer, gatewayQuery } from './http/controllers/gateway-query.js';
import { JwtAuth, type JwtSettings } from './services/keys/jwt-auth.js';
import { dashboard } from './http/controllers/dashboard.js';
import {
  ANTHROPIC_ERRORS,
  apiKeyAsBearer,
  countTokensRoute,
  messagesRoute,
} from './http/controllers/messages.js';

export interface AppDeps {
  config: ConfigSource;
  logger: Logger;
  registry: EndpointRegistry;
  completions: CompletionService;
  isShuttingDown: () => boolean;
  /** While the first discovery round is running, a promise of its end; undefined once it is over. */
  pendingDiscovery: () => Promise<void> | undefined;
  /** Re-reads the configuration (admin route); resolves with a summary or rejects with the problems. */
  reload: () => Promise<unknown>;
  /** The effective configuration with the source of each value, keys redacted (admin route). */
  configView: () => unknown;
  keys: KeyService;
  claims: ClaimService;
  limiter: Limiter;
  /** Writes each finished completion to the usage ledger. */
  usage: UsageRecorder;
  ledger: UsageLedger;
  /** The response cache; undefined when CACHE is off. */
  cache: ResponseCache | undefined;
  metrics: GatewayMetrics;
  /** Tracing; undefined unless an OTLP endpoint is configured. */
  tracing: Tracing | undefined;
  /** Endpoints added through the admin API. */
  runtimeEndpoints: RuntimeEndpoints;
  /** The Prometheus text of a scrape: this process's, or every worker's summed (WORKERS > 1). */
  metricsText: () => Promise<string>;
  /** This gateway's own URL (routes that ask the gateway itself, over loopback). */
  selfUrl: () => string;
  /** The last minutes of traffic of every process, for the dashboard. */
  traffic: () => Promise<TrafficView>;
  now: () => number;
}

const NO_KEYS: readonly string[] = Object.freeze([]);

/**
 * The HTTP application: middleware order, routes, 404 and the error handler. No env, no listen. Settings
 * are read from the configuration in force at each request, so a reload needs no new app.
 */
export function createApp(deps: AppDeps): express.Express {
  const { config, registry } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Which proxies' X-Forwarded-For gives the client address (req.ip: claims per address, logs).
  app.set('trust proxy', trustProxyValue(config.current.server.trustProxy));

  app.use(accessLog(deps.logger));
  app.use(cors(() => config.current.server.cors.origins));

  // JWTs: a verifier for the settings in force (a reload with other settings makes a new one).
  let jwtAuth: { settings: JwtSettings; auth: JwtAuth } | undefined;
  const clientAuth = bearerAuth(
    () => config.current.auth.apiKeys,
    (secret, hash) => deps.keys.check(secret, hash),
    (token) => {
      const settings = config.current.auth.jwt;
      if (!JwtAuth.enabled(settings)) return undefined;
      if (jwtAuth?.settings !== settings)
        jwtAuth = { settings, auth: new JwtAuth(settings, (id) => deps.keys.team(id), deps.now) };
      return jwtAuth.auth.check(token);
    },
  );
  const auth: RequestHandler = (req, res, next) =>
    config.current.auth.disabled ? next() : clientAuth(req, res, next);
  // The hot path first, at application level: no layer before it but the access log and CORS.
  // Raw bytes for any content type: forwarded untouched, parsed once by the controller.
  const knownModel = (model: string) =>
    registry.serving(model).length > 0 || Object.hasOwn(config.current.aliases, model);
  const completionDeps: ChatDeps = {
    service: deps.completions,
    forwardHeaders: () => config.current.routing.forwardHeaders,
    logger: deps.logger,
    limiter: deps.limiter,
    usage: deps.usage,
    endpointExists: (name) => config.current.endpoints.some((e) => e.name === name),
    cache: deps.cache,
    metrics: deps.metrics,
    tracing: deps.tracing,
    knownModel,
  };
  const body = rawBody(() => config.current.server.bodyLimit);
  app.post('/v1/chat/completions', auth, body, chatCompletions(completionDeps));
  // The same pipeline (routing, retries, failover, limits, ledger, metrics) for the other OpenAI routes
  // model servers answer.
  app.post('/v1/embeddings', auth, body, chatCompletions({ ...completionDeps, route: EMBEDDINGS_ROUTE }));
  app.post('/v1/completions', auth, body, chatCompletions({ ...completionDeps, route: COMPLETIONS_ROUTE }));

  // Anthropic's Messages API in front of every endpoint (Anthropic SDK clients, Claude Code): a chat
  // completion asked of this gateway, answered and erring in Anthropic's shape; the key as x-api-key.
  const anthropicErrors = errorHandler(deps.logger, ANTHROPIC_ERRORS);
  const anthropicKey = apiKeyAsBearer(() => config.current.auth.disabled);
  app.post(
    '/v1/messages',
    anthropicKey,
    auth,
    body,
    messagesRoute({ selfUrl: deps.selfUrl }),
    anthropicErrors,
  );
  app.post(
    '/v1/messages/count_tokens',
    anthropicKey,
    auth,
    body,
    countTokensRoute({ knownModel }),
    anthropicErrors,
  );
  app.all(
    ['/v1/messages', '/v1/messages/count_tokens'],
    anthropicKey,
    auth,
    methodNotAllowed('POST'),
    anthropicErrors,
  );
  // Anthropic's other routes (batches, files…) are not served: said in Anthropic's shape.
  app.all('/v1/messages/*rest', anthropicKey, auth, notFound(), anthropicErrors);

  // One call, one string back (seed Unified LLM API Gateway): a chat completion asked of this gateway.
  app.post(
    '/gateway/query',
    bareKeyAsBearer,
    auth,
    jsonBody,
    gatewayQuery({
      selfUrl: deps.selfUrl,
      // The configured default, else the first model listed that the caller may use.
      defaultModel: (allowed) =>
        config.current.query.defaultModel ??
        [...registry.endpoints.flatMap((ep) => [...ep.models]), ...Object.keys(config.current.aliases)].find(
          (m) => allowed === undefined || allowed.has(m),
        ),
      // The first of that provider's endpoints, by priority, serving the model or one of its alias's.
      preferredEndpoint: (model, provider) =>
        [model, ...(Object.hasOwn(config.current.aliases, model) ? config.current.aliases[model]! : [])]
          .flatMap((m) => registry.serving(m))
          .filter((ep) => ep.config.provider === provider)
          .sort((a, b) => a.config.priority - b.config.priority)[0]?.config.name,
    }),
  );
  app.all('/gateway/query', methodNotAllowed('POST'));

  app.get('/health', liveness());
  app.get(['/health/liveliness', '/health/liveness'], liveness());
  app.get(['/health/readiness', '/ready'], readiness(registry, config, deps.isShuttingDown));
  // Prometheus: open, or behind the admin key with METRICS_AUTH=admin.
  const metricsAuth = bearerAuth(() => {
    const key = config.current.auth.adminKey;
    return key === undefined ? NO_KEYS : [key];
  });
  app.get(
    '/metrics',
    (req, res, next) => {
      if (config.current.metrics.auth === 'admin') metricsAuth(req, res, next);
      else next();
    },
    async (_req, res) => {
      res.setHeader('content-type', deps.metrics.contentType);
      res.setHeader('cache-control', 'no-store');
      res.end(await deps.metricsText());
    },
  );
  app.all('/metrics', methodNotAllowed('GET'));

  // The operator's page: static files; its data comes from the admin API with the key typed into it.
  app.get(['/dashboard', '/dashboard/*file'], dashboard());
  app.all(['/dashboard', '/dashboard/*file'], methodNotAllowed('GET'));

  // Everything else under /v1 needs a client key too, unknown routes included.
  app.use('/v1', auth);
  app.get('/v1/models', listModels(registry, config, deps.pendingDiscovery));
  app.get('/v1/models/*model', getModel(registry, config, deps.pendingDiscovery));
  app.get('/v1/usage', ownUsage(deps.keys.store, deps.ledger));
  app.all('/v1/usage', methodNotAllowed('GET'));
  app.all(['/v1/chat/completions', '/v1/embeddings', '/v1/completions'], methodNotAllowed('POST'));
  app.all(['/v1/models', '/v1/models/*model'], methodNotAllowed('GET'));

  // Permissionless keys: no auth, whether or not admin routes are on.
  app.post('/api/v1/keys/claim', ...claimRoute(deps.claims));
  app.all('/api/v1/keys/claim', methodNotAllowed('POST'));

  // Admin routes exist only while ADMIN_API_KEY is set; client keys never open them.
  const adminKeys = () => {
    const key = config.current.auth.adminKey;
    return key === undefined ? NO_KEYS : [key];
  };
  const adminAuth = bearerAuth(adminKeys);
  const admin = Router();
  admin.use((req, res, next) => {
    if (config.current.auth.adminKey !== undefined) return adminAuth(req, res, next);
    next(
      new NotFoundError('Admin routes are off: set ADMIN_API_KEY to turn them on (then restart or reload).', {
        code: 'admin_disabled',
      }),
    );
  });
  admin.get(
    '/providers/status',
    providersStatus(
      registry,
      config,
      () => ({
        limits: deps.limiter.status,
        keys: { backend: deps.keys.store.backend, location: deps.keys.store.location },
        usage: deps.ledger.status,
        cache: deps.cache?.status ?? { mode: 'off' },
      }),
      (name) => (deps.runtimeEndpoints.names.has(name) ? 'runtime' : 'config'),
    ),
  );
  admin.get(
    '/runtime',
    runtime(
      () => deps.completions.active,
      () => deps.completions.transcriptBytes,
    ),
  );
  admin.get('/traffic', async (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json(await deps.traffic());
  });
  admin.get('/config', (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json(deps.configView());
  });
  admin.post('/config/reload', async (_req, res) => {
    res.json({ object: 'config.reload', ...((await deps.reload()) as object) });
  });
  admin.use(keyRoutes(deps.keys, deps.now));
  admin.use(endpointRoutes(registry, deps.runtimeEndpoints));
  admin.all('/endpoints', methodNotAllowed('GET, POST'));
  admin.all('/endpoints/:name', methodNotAllowed('PATCH, DELETE'));
  admin.use(usageRoutes(deps.keys.store, deps.ledger));
  admin.all(['/usage', '/usage/records'], methodNotAllowed('GET'));
  admin.all(['/providers/status', '/runtime', '/config', '/traffic'], methodNotAllowed('GET'));
  admin.all(['/keys', '/teams'], methodNotAllowed('GET, POST'));
  admin.all(['/keys/:id', '/teams/:id'], methodNotAllowed('GET, PATCH, DELETE'));
  admin.all('/keys/:id/rotate', methodNotAllowed('POST'));
  admin.all('/config/reload', methodNotAllowed('POST'));
  admin.post('/cache/clear', async (_req, res) => {
    const cleared = deps.cache ? await deps.cache.clear() : 0;
    res.json({ object: 'cache.clear', cleared, mode: deps.cache?.backend ?? 'off' });
  });
  admin.all('/cache/clear', methodNotAllowed('POST'));
  app.use('/api/v1', admin);

  app.use(notFound());
  app.use(errorHandler(deps.logger));
  return app;
}

/** TRUST_PROXY as Express takes it: true/false, a number of hops, or addresses and names. */
function trustProxyValue(value: string): boolean | number | string {
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false' || v === 'none') return false;
  if (/^\d+$/.test(v)) return Number(v);
  return value;
}

function methodNotAllowed(allow: string): RequestHandler {
  return (req, res, next) => {
    res.setHeader('allow', allow);
    next(
      new InvalidRequestError(`Method ${req.method} is not allowed here; use ${allow}.`, {
        code: 'method_not_allowed',
      }),
    );
  };
}
