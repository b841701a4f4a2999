import { ERROR_CODES, type ErrorCode, type ErrorType } from './codes.js';

export type { ErrorCode, ErrorType };

/**
 * One error hierarchy for the whole gateway. Every error that reaches a client is a GatewayError (or is
 * mapped to one by the error handler) and is serialised in OpenAI's wire format:
 * `{"error":{"message","type","param","code"}}`. `message` is shown to end users by AkashChat, so it is
 * written for humans and never carries secrets. Codes come from the catalogue of `codes.ts`, which also
 * gives each its status and type unless the error says otherwise.
 */
export interface GatewayErrorOptions {
  code: ErrorCode;
  status?: number;
  type?: ErrorType;
  param?: string | null;
  /** Whether trying again (on another endpoint or later) may succeed. */
  retryable?: boolean;
  /** Seconds a client should wait before retrying; sent as Retry-After. */
  retryAfterSeconds?: number | undefined;
  /** Headers the answer carries besides (a refusal's `x-ratelimit-*`). */
  headers?: Readonly<Record<string, string>> | undefined;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly code: string;
  readonly param: string | null;
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(message: string, options: GatewayErrorOptions, wireCode?: string) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const entry = ERROR_CODES[options.code];
    this.name = new.target.name;
    this.status = options.status ?? entry.status;
    this.type = options.type ?? entry.type;
    this.code = wireCode ?? options.code;
    this.param = options.param ?? null;
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers;
  }
}

export class InvalidRequestError extends GatewayError {
  /** `status` only for a 4xx of another library's (the catalogue gives each code its own). */
  constructor(message: string, options: { code?: ErrorCode; param?: string; status?: number } = {}) {
    super(message, {
      code: options.code ?? 'invalid_request',
      param: options.param ?? null,
      status: options.status,
    });
  }
}

export class AuthenticationError extends GatewayError {
  constructor(
    message: string,
    code: 'invalid_api_key' | 'missing_api_key' | 'invalid_authorization_header' = 'invalid_api_key',
  ) {
    super(message, { code });
  }
}

export class NotFoundError extends GatewayError {
  constructor(
    message: string,
    options: { code: 'route_not_found' | 'model_not_found' | 'admin_disabled'; param?: string },
  ) {
    super(message, { code: options.code, param: options.param ?? null });
  }
}

export class ModelNotFoundError extends NotFoundError {
  /** `available`: every model there is (`all`), or the closest ones to what was asked. */
  constructor(model: string, available?: { all: boolean; ids: readonly string[] }) {
    const ids = available?.ids.map((id) => `'${clip(id, 100)}'`).join(', ');
    const hint =
      available === undefined
        ? ''
        : available.ids.length === 0
          ? ' No endpoint serves any model right now.'
          : available.all
            ? ` Available models: ${ids}.`
            : ` The closest models here: ${ids} (GET /v1/models lists them all).`;
    super(
      `The model '${clip(model)}' does not exist or is not served by any endpoint of this gateway.${hint}`,
      {
        code: 'model_not_found',
        param: 'model',
      },
    );
  }
}

export class PayloadTooLargeError extends GatewayError {
  constructor(limitBytes: number | undefined) {
    const limit = limitBytes === undefined ? 'the configured limit' : `${formatBytes(limitBytes)}`;
    super(`Request body is too large: the gateway accepts at most ${limit}.`, { code: 'request_too_large' });
  }
}

/** No endpoint could take the request right now (all down, ejected, cooling down or rate limited). */
export class NoEndpointAvailableError extends GatewayError {
  constructor(message: string, retryAfterSeconds: number, cause?: unknown) {
    super(message, { code: 'no_endpoint_available', retryable: true, retryAfterSeconds, cause });
  }
}

/** Upstreams answered, but badly (5xx, misconfigured key): a gateway-side problem the client cannot fix. */
export class BadGatewayError extends GatewayError {
  constructor(message: string, code: ErrorCode = 'upstream_error', cause?: unknown) {
    super(message, { status: 502, type: 'upstream_error', code, retryable: true, cause });
  }
}

export class GatewayTimeoutError extends GatewayError {
  constructor(message: string, code: ErrorCode = 'request_timeout', cause?: unknown) {
    super(message, { status: 504, type: 'timeout_error', code, retryable: true, cause });
  }
}

/**
 * An upstream rejected the request itself (400, 413, 422, other 4xx). Its status and message are kept so
 * that the client sees the real reason (for instance a context that is too long).
 */
export class UpstreamRequestError extends GatewayError {
  constructor(
    status: number,
    message: string,
    options: { type?: string; code?: string | null; param?: string | null } = {},
  ) {
    // The upstream's own code goes on to the client when it sent one.
    super(
      message,
      {
        status,
        type: (options.type as ErrorType | undefined) ?? 'invalid_request_error',
        code: 'upstream_rejected_request',
        param: options.param ?? null,
      },
      options.code ?? undefined,
    );
  }
}

/** A reload (admin route) found problems in the new configuration; the old one stays in force. */
export class InvalidConfigReloadError extends GatewayError {
  constructor(readonly problems: readonly string[]) {
    super(
      `The new configuration was rejected; the old one stays in force. Problems: ${problems.join('; ')}`,
      { code: 'invalid_configuration' },
    );
  }
}

export class ReloadUnavailableError extends GatewayError {
  constructor(
    message = 'This gateway was started without a configuration source to reload from: restart it to ' +
      'apply a new configuration.',
  ) {
    super(message, { code: 'reload_unavailable' });
  }
}

export class InternalError extends GatewayError {
  constructor(cause?: unknown) {
    super('The gateway hit an internal error. Please try again.', { code: 'internal_error', cause });
  }
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function toOpenAIErrorBody(err: GatewayError): OpenAIErrorBody {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/**
 * Request data repeated in a message or a log line, cut to a few hundred characters: a client must not
 * be able to make the gateway write megabytes.
 */
export function clip(text: string, maxChars = 256): string {
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
