import express, { Router } from 'express';
import type { GatewayConfig } from './config/types.js';
import { chatCompletions } from './http/controllers/chat-completions.js';
import { liveness, readiness } from './http/controllers/health.js';
import { getModel, listModels } from './http/controllers/models.js';
import { accessLog } from './http/middleware/access-log.js';
import { bearerAuth } from './http/middleware/auth.js';
import { cors } from './http/middleware/cors.js';
import { errorHandler, notFound } from './http/middleware/error-handler.js';
import type { Logger } from './observability/logger.js';
import type { CompletionService } from './services/completion-service.js';
import type { EndpointRegistry } from './services/endpoint-registry.js';

export interface AppDeps {
  config: GatewayConfig;
  logger: Logger;
  registry: EndpointRegistry;
  completions: CompletionService;
  isShuttingDown: () => boolean;
}

/** The HTTP application: middleware order, routes, 404 and the error handler. No env, no listen. */
export function createApp(deps: AppDeps): express.Express {
  const { config, registry } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', true);

  app.use(accessLog(deps.logger));
  app.use(cors(config.server.corsOrigins));

  app.get('/health', liveness());
  app.get(['/health/liveliness', '/health/liveness'], liveness());
  app.get('/health/readiness', readiness(registry, deps.isShuttingDown));

  const v1 = Router();
  if (!config.auth.disabled) v1.use(bearerAuth(config.auth.apiKeys));
  v1.get('/models', listModels(registry, config.models.ownedBy));
  v1.get('/models/*model', getModel(registry, config.models.ownedBy));
  v1.post(
    '/chat/completions',
    // Raw bytes for any content type: forwarded untouched, parsed once by the controller.
    express.raw({ type: () => true, limit: config.server.bodyLimitBytes }),
    chatCompletions(deps.completions),
  );
  app.use('/v1', v1);

  app.use(notFound());
  app.use(errorHandler(deps.logger));
  return app;
}
