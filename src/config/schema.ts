import { createPublicKey } from 'node:crypto';
/**
 * The one configuration schema. The config file (YAML or JSON) has exactly this structure; environment
 * variables are mapped onto it by the loader before validation, so both forms are checked by the same
 * rules and reported the same way. Its output is the gateway's configuration (`types.ts` only names
 * parts of it): adding a setting takes one line here and, for an environment variable, one in the
 * loader's map. Checks across fields (endpoint names, aliases) are the final transform's.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { withoutCredentials } from './config-problems.js';
import { NEVER_FORWARDED } from './forwarded-headers.js';
import { PROVIDER_NAMES, PROVIDER_URLS, type ProviderName } from './providers.js';

/** A string with something in it, trimmed; a blank one counts as not set. */
function nonBlank(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t === undefined || t === '' ? undefined : t;
}

export const ROUTING_STRATEGIES = ['weighted', 'least-outstanding'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Whether `value` is something Express's `trust proxy` takes (proxy-addr would throw at start otherwise). */
export function isTrustProxy(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['true', 'false', 'none'].includes(v) || /^\d+$/.test(v)) return true;
  return v.split(',').every((part) => {
    const item = part.trim();
    if (['loopback', 'linklocal', 'uniquelocal'].includes(item)) return true;
    const [address, bits, extra] = item.split('/');
    if (extra !== undefined || !address || isIP(address) === 0) return false;
    if (bits === undefined) return true;
    if (/^\d+$/.test(bits)) return Number(bits) <= (isIP(address) === 4 ? 32 : 128);
    return isIP(bits) === 4;
  });
}

/** Numbers may arrive as strings from the environment; a blank string means "not set". */
function numeric<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const trimmed = v.trim();
    if (trimmed === '') return undefined;
    const n = Number(trimmed);
    return Number.isNaN(n) ? v : n;
  }, schema);
}

/**
 * The longest duration a timer can wait: Node fires a longer one after 1 ms (and warns), so that a
 * heartbeat of 3e9 ms would fire continuously. Every duration setting is bounded by it.
 */
const MAX_TIMER_MS = 2_147_483_647;
const TIMER_LIMIT_MESSAGE = `must be at most ${MAX_TIMER_MS} ms (about 24.8 days)`;

const positiveMs = () => numeric(z.number().int().positive().max(MAX_TIMER_MS, TIMER_LIMIT_MESSAGE));

const booleanLike = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    const s = v.trim().toLowerCase();
    if (s === '') return undefined;
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    return v;
  },
  z.boolean({ error: 'must be true or false' }),
);

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** `10mb`, `512kb`, `1gb` or a plain number of bytes; units are binary (1mb = 1 MiB) as in body-parser. */
const byteSize = z
  .union([z.number().int().positive(), z.string()], { error: 'must be a size such as 10mb or 512kb' })
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `'${v}' is not a size; use a value such as 10mb or 512kb` });
      return z.NEVER;
    }
    const bytes = Math.floor(Number(m[1]) * (BYTE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
    if (bytes <= 0) {
      ctx.addIssue({ code: 'custom', message: 'must be greater than zero' });
      return z.NEVER;
    }
    return bytes;
  });

const nonNegative = () => numeric(z.number().min(0));

const timeoutsShape = {
  minBytesPerSecond: nonNegative(),
  throughputWindowMs: positiveMs(),
  connectMs: positiveMs(),
  firstByteMs: positiveMs(),
  idleMs: positiveMs(),
  totalMs: positiveMs(),
};

const endpointTimeoutsSchema = z.strictObject({
  connectMs: timeoutsShape.connectMs.optional(),
  firstByteMs: timeoutsShape.firstByteMs.optional(),
  idleMs: timeoutsShape.idleMs.optional(),
  totalMs: timeoutsShape.totalMs.optional(),
  minBytesPerSecond: timeoutsShape.minBytesPerSecond.optional(),
  throughputWindowMs: timeoutsShape.throughputWindowMs.optional(),
});

/**
 * Routes an operator may paste by mistake at the end of an endpoint's URL: the base URL is what is
 * left (a warning says so).
 */
export const ROUTE_SUFFIXES = [
  '/v1/chat/completions',
  '/chat/completions',
  '/v1/completions',
  '/v1/models',
  '/v1/embeddings',
] as const;

/**
 * Accepts the base URL with or without a trailing `/` or `/v1` (the original gateway's users wrote both),
 * or with a route pasted after it, and normalises to the base without `/v1`.
 */
const endpointUrl = z.string().transform((raw, ctx) => {
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `'${withoutCredentials(raw)}' is not a valid URL (expected e.g. https://host:8000)`,
    });
    return z.NEVER;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    ctx.addIssue({
      code: 'custom',
      message: `url must start with http:// or https:// (got ${parsed.protocol})`,
    });
    return z.NEVER;
  }
  if (parsed.username || parsed.password) {
    ctx.addIssue({ code: 'custom', message: 'url must not contain credentials: put the key in apiKey' });
    return z.NEVER;
  }
  if (parsed.search || parsed.hash) {
    ctx.addIssue({ code: 'custom', message: 'url must not contain a query string or fragment' });
    return z.NEVER;
  }
  return `${parsed.protocol}//${parsed.host}${basePath(parsed.pathname)}`;
});

/** The path of a base URL: without a trailing `/`, a route pasted after it, or `/v1`. */
export function basePath(pathname: string): string {
  let path = pathname.replace(/\/+$/, '');
  const route = ROUTE_SUFFIXES.find((r) => path.toLowerCase().endsWith(r));
  if (route) path = path.slice(0, -route.length);
  return path.replace(/\/v1$/, '');
}

/** A client header name to forward upstream, or a prefix ending in `*`; never a credential or hop-by-hop header. */
const forwardedHeader = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9!#$%&'+.^_`|~-]+\*?$/, 'must be a header name, or a prefix ending in *')
  .superRefine((name, ctx) => {
    if (NEVER_FORWARDED.has(name) || name.startsWith('x-gateway-') || name === '*')
      ctx.addIssue({
        code: 'custom',
        message: `'${name}' is never forwarded (credentials, hop-by-hop or set by the gateway)`,
      });
  });

const endpointFields = z.strictObject({
  url: endpointUrl,
  /** The wire protocol (CONFIG.md, providers); presets of hosted services bring their base URL. */
  provider: z
    .enum(PROVIDER_NAMES, { error: `provider must be one of ${PROVIDER_NAMES.join(', ')}` })
    .default('openai-compatible'),
  /** Anthropic's `anthropic-version`, Azure's `api-version`. */
  apiVersion: z.string().trim().min(1).optional(),
  /** Azure: `{<model>: <deployment>}`. */
  deployments: z.record(z.string().trim().min(1), z.string().trim().min(1)).optional(),
  /** Anthropic: `max_tokens` when the client sends none. */
  defaultMaxTokens: numeric(z.number().int().positive()).optional(),
  apiKey: z.string().optional().transform(nonBlank),
  name: z
    .string()
    .trim()
    .min(1, 'name must not be empty')
    .max(64)
    .regex(/^[\w.:@-]+$/, 'name may contain only letters, digits and . _ - : @')
    .optional(),
  priority: numeric(z.number().int().min(0)).default(1),
  weight: numeric(z.number().min(0)).default(1),
  models: z
    .array(z.string().trim().min(1))
    .min(1, 'models must list at least one model when given')
    .optional()
    .transform((models) => (models ? [...new Set(models)] : undefined)),
  maxConcurrent: numeric(z.number().int().positive()).optional(),
  timeouts: endpointTimeoutsSchema.optional(),
  /** `{<public id>: <upstream id>}`: the endpoint serves the public id under its own name. */
  modelNames: z
    .record(z.string().trim().min(1), z.string().trim().min(1))
    .optional()
    .superRefine((names, ctx) => {
      const seen = new Map<string, string>();
      for (const [pub, upstream] of Object.entries(names ?? {})) {
        const other = seen.get(upstream);
        if (other !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: [pub],
            message: `'${other}' and '${pub}' both name the upstream model '${upstream}': give each upstream model one public id`,
          });
        seen.set(upstream, pub);
      }
    }),
});

/**
 * An endpoint: its fields, a preset's base URL when `url` is left out, and what its provider needs
 * (Azure: deployments, whose models are the endpoint's unless it lists them).
 */
const endpointSchema = z.preprocess(
  (raw) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
    const ep = raw as Record<string, unknown>;
    const preset = typeof ep.provider === 'string' ? PROVIDER_URLS[ep.provider as ProviderName] : undefined;
    return ep.url === undefined && preset !== undefined ? { ...ep, url: preset } : ep;
  },
  endpointFields
    .superRefine((ep, ctx) => {
      if (
        ep.provider === 'azure' &&
        (ep.deployments === undefined || Object.keys(ep.deployments).length === 0)
      )
        ctx.addIssue({
          code: 'custom',
          path: ['deployments'],
          message: 'an azure endpoint needs deployments: {"<model>": "<deployment name>"}',
        });
      if (ep.deployments !== undefined && ep.provider !== 'azure')
        ctx.addIssue({
          code: 'custom',
          path: ['deployments'],
          message: 'deployments are for provider azure',
        });
    })
    .transform((ep) =>
      ep.provider === 'azure' && ep.models === undefined && ep.deployments
        ? { ...ep, models: Object.keys(ep.deployments) }
        : ep,
    ),
);

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30d`, `12h`, `90m`, `300s` or a plain number of seconds, as milliseconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v * 1_000 : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(v);
  if (!m) return undefined;
  const ms = Number(m[1]) * (DURATION_UNITS[(m[2] ?? 's').toLowerCase()] ?? 1_000);
  return ms > 0 ? Math.round(ms) : undefined;
}

const duration = z
  .union([z.number(), z.string()], { error: 'must be a duration such as 5d, 12h or a number of seconds' })
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `'${String(v)}' is not a duration; use e.g. 5d, 12h, 90m or 300s`,
      });
      return z.NEVER;
    }
    return ms;
  });

const positiveInt = () => numeric(z.number().int().positive());

/** The limits of one scope (contract: CONFIG.md, Limits); every field optional. */
export const limitsSchema = z.strictObject({
  rpm: positiveInt().optional(),
  tpm: positiveInt().optional(),
  maxParallel: positiveInt().optional(),
  budget: z
    .strictObject({
      amount: numeric(z.number().positive()),
      period: z.enum(['day', 'month', 'total'], { error: "period must be 'day', 'month' or 'total'" }),
    })
    .optional(),
});

const priceSchema = z.strictObject({
  inputPerMTok: numeric(z.number().min(0)),
  outputPerMTok: numeric(z.number().min(0)),
});

const configShape = z.strictObject({
  server: z
    .strictObject({
      port: numeric(z.number().int().min(0).max(65535)).default(3000),
      host: z.string().min(1).default('0.0.0.0'),
      bodyLimit: byteSize.default(10 * 1024 * 1024),
      cors: z.strictObject({ origins: z.array(z.string().min(1)).default(['*']) }).prefault({}),
      shutdownGraceMs: positiveMs().default(30_000),
      /** Processes serving the port (node:cluster); 1 = no cluster. */
      workers: numeric(z.number().int().min(1).max(64)).default(1),
      /** SSE comment interval while a stream waits for its first token (keeps idle proxies from closing). */
      heartbeatIntervalMs: positiveMs().default(15_000),
      /** Longest time a client may take to send its request (headers and body). */
      clientBodyTimeoutMs: positiveMs().default(60_000),
      /**
       * Which proxies' X-Forwarded-For is believed for the client address (Express's `trust proxy`):
       * private and loopback addresses by default, as the Akash ingress is; `false` believes none.
       */
      trustProxy: z
        .string()
        .trim()
        .min(1)
        .refine(
          isTrustProxy,
          'must be true, false, a number of hops, or addresses, subnets (10.0.0.0/8) and the names loopback, linklocal, uniquelocal, comma-separated',
        )
        .default('loopback, linklocal, uniquelocal'),
    })
    .prefault({}),
  auth: z
    .strictObject({
      apiKeys: z
        .array(z.string())
        .default([])
        .transform((keys) => [...new Set(keys.map((k) => k.trim()).filter((k) => k !== ''))]),
      adminKey: z.string().optional().transform(nonBlank),
      disabled: booleanLike.default(false),
      /** Lets placeholder or short keys start on an address other machines can reach. */
      allowWeakKeys: booleanLike.default(false),
      /** JWTs as client credentials: HS256 with `secret`, or RS256/ES256 with the PEM `publicKey`. */
      jwt: z
        .strictObject({
          secret: z.string().optional().transform(nonBlank),
          publicKey: z.string().optional().transform(nonBlank),
          issuer: z.string().optional().transform(nonBlank),
          audience: z.string().optional().transform(nonBlank),
        })
        .prefault({}),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
      file: booleanLike.default(false),
      filePath: z.string().min(1).default('logs/gateway.log'),
    })
    .prefault({}),
  models: z
    .strictObject({
      ownedBy: z.string().min(1).default('proxy'),
      discoveryIntervalMs: positiveMs().default(30_000),
      discoveryTimeoutMs: positiveMs().default(5_000),
    })
    .prefault({}),
  endpoints: z.array(endpointSchema).default([]),
  /** Where keys, teams (and the usage ledger) are kept. */
  database: z
    .strictObject({
      url: z
        .string()
        .trim()
        .regex(/^(postgres(ql)?:\/\/|sqlite:)/i, 'must start with postgres://, postgresql:// or sqlite:')
        .default('sqlite:data/gateway.db'),
    })
    .prefault({}),
  /** Shared counters (limits, claims, cooldowns) for several replicas; unset: kept in the process. */
  redis: z
    .strictObject({
      url: z
        .string()
        .trim()
        .regex(/^rediss?:\/\//i, 'must start with redis:// or rediss://')
        .optional(),
      /** Start of every key: gateways that must not share counters may share one Redis. */
      prefix: z.string().trim().min(1).max(100).default('llm-gateway:'),
    })
    .prefault({}),
  limits: z
    .strictObject({
      global: limitsSchema.optional(),
      models: z.record(z.string().min(1), limitsSchema).default({}),
      keyDefaults: limitsSchema.optional(),
      onStoreError: z.enum(['open', 'closed']).default('open'),
      /** Completion tokens reserved against tpm when the request sets no max_tokens. */
      defaultReserveTokens: positiveInt().default(1024),
    })
    .prefault({}),
  keys: z
    .strictObject({
      claim: z
        .strictObject({
          enabled: booleanLike.default(false),
          team: z.string().trim().min(1).max(64).default('permissionless'),
          expiresIn: duration.default(5 * 86_400_000),
          limits: limitsSchema.default({ maxParallel: 3 }),
          perIpPerDay: positiveInt().default(3),
          captcha: z
            .strictObject({
              verifyUrl: z.url({ error: "must be the captcha service's verify URL" }),
              secret: z.string().min(1),
            })
            .optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  pricing: z.record(z.string().min(1), priceSchema).default({}),
  usage: z
    .strictObject({
      /** Days of usage records kept; older ones are pruned. */
      retentionDays: numeric(z.number().int().positive().max(36_500)).default(90),
    })
    .prefault({}),
  tracing: z
    .strictObject({
      endpoint: z
        .url({ error: 'must be the OTLP collector’s base URL, e.g. http://collector:4318' })
        .optional(),
      tracesEndpoint: z.url({ error: 'must be the full URL spans are posted to' }).optional(),
      protocol: z
        .enum(['http/protobuf', 'http/json'], {
          error: "must be 'http/protobuf' or 'http/json' (OTLP over HTTP)",
        })
        .default('http/protobuf'),
      serviceName: z.string().trim().min(1).max(200).default('llm-gateway'),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Who may read GET /metrics: anyone who reaches the port, or the admin key. */
      auth: z.enum(['none', 'admin'], { error: "must be 'none' or 'admin'" }).default('none'),
    })
    .prefault({}),
  /** `POST /gateway/query`: the model used when the body names none (else the first model listed). */
  query: z.strictObject({ defaultModel: z.string().trim().min(1).optional() }).prefault({}),
  cache: z
    .strictObject({
      /** Where answers are kept: nowhere, in the process (bounded by maxBytes), or in Redis (shared). */
      mode: z
        .enum(['off', 'memory', 'redis'], { error: "must be 'off', 'memory' or 'redis'" })
        .default('off'),
      ttl: duration.default(3_600_000),
      maxBytes: byteSize.default(512 * 1024 * 1024),
      /** Who shares an entry: the key that asked it, its team, or every caller. */
      scope: z.enum(['key', 'team', 'global'], { error: "must be 'key', 'team' or 'global'" }).default('key'),
    })
    .prefault({}),
  routing: z
    .strictObject({
      strategy: z.enum(ROUTING_STRATEGIES).default('weighted'),
      maxAttempts: numeric(z.number().int().min(1).max(20)).default(3),
      timeouts: z
        .strictObject({
          connectMs: timeoutsShape.connectMs.default(5_000),
          firstByteMs: timeoutsShape.firstByteMs.default(120_000),
          idleMs: timeoutsShape.idleMs.default(60_000),
          // 0 = off. After the first byte, a stream slower than this over a window is cut.
          minBytesPerSecond: timeoutsShape.minBytesPerSecond.default(0),
          throughputWindowMs: timeoutsShape.throughputWindowMs.default(10_000),
          totalMs: timeoutsShape.totalMs.default(600_000),
          /** Whole request of a non-streamed (JSON) completion; unset: totalMs. */
          jsonTotalMs: timeoutsShape.totalMs.optional(),
        })
        .prefault({}),
      continuation: booleanLike.default(true),
      /** Client headers forwarded upstream besides the default allow-list. */
      forwardHeaders: z.array(forwardedHeader).default([]),
      /** One stream's transcript kept for continuation; past it a break ends the stream. */
      continuationMaxBytes: byteSize.default(1024 * 1024),
      /** All streams' transcripts together. */
      continuationBudgetBytes: byteSize.default(64 * 1024 * 1024),
      hedge: z
        .strictObject({
          delayMs: z
            .union(
              [z.literal('p95'), numeric(z.number().int().min(0).max(MAX_TIMER_MS, TIMER_LIMIT_MESSAGE))],
              {
                error: "delayMs must be 'p95' or a number of milliseconds",
              },
            )
            .default(0),
          models: z.array(z.string().trim().min(1)).default([]),
        })
        .prefault({}),
      affinity: z
        .strictObject({
          header: z.string().trim().toLowerCase().min(1).default('x-session-id'),
          userField: booleanLike.default(true),
          loadFactor: numeric(z.number().min(1).max(10)).default(1.25),
        })
        .optional(),
    })
    .prefault({}),
  aliases: z.record(z.string(), z.array(z.string().min(1)).min(1)).default({}),
  health: z
    .strictObject({
      probeIntervalMs: positiveMs().default(10_000),
      ejection: z
        .strictObject({
          consecutiveFailures: numeric(z.number().int().min(1)).default(3),
          failureRatio: numeric(z.number().gt(0).max(1)).default(0.5),
          minRequests: numeric(z.number().int().min(1).max(20)).default(10),
          baseEjectionMs: positiveMs().default(10_000),
          maxEjectionMs: positiveMs().default(300_000),
          maxEjectedPercent: numeric(z.number().min(0).max(100)).default(50),
        })
        .prefault({}),
    })
    .prefault({}),
});

type Shape = z.output<typeof configShape>;

/**
 * Across fields: every endpoint gets a unique name (its own, else its host) and its effective timeouts
 * (its own over the global ones); an explicit name is used once; an alias does not list itself.
 */
export const configSchema = configShape.transform((config, ctx) => {
  const used = new Set<string>();
  const firstIndex = new Map<string, number>();
  config.endpoints.forEach((ep, i) => {
    if (ep.name === undefined) return;
    const first = firstIndex.get(ep.name);
    if (first !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['endpoints', i, 'name'],
        message: `'${ep.name}' is already used by endpoints[${first}]`,
      });
    else firstIndex.set(ep.name, i);
    used.add(ep.name);
  });
  for (const [alias, targets] of Object.entries(config.aliases)) {
    if (targets.includes(alias))
      ctx.addIssue({ code: 'custom', path: ['aliases', alias], message: 'an alias must not list itself' });
  }
  const limited = limitedBy(config);
  if (config.server.workers > 1 && config.redis.url === undefined && limited)
    ctx.addIssue({
      code: 'custom',
      path: ['redis', 'url'],
      message: `REDIS_URL is required with WORKERS=${config.server.workers} because ${limited}: each worker would otherwise count limits on its own, letting through WORKERS times the limit`,
    });
  const { jwt } = config.auth;
  if (jwt.secret !== undefined && jwt.publicKey !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['auth', 'jwt', 'publicKey'],
      message:
        'JWT_SECRET and JWT_PUBLIC_KEY are both set: give one (JWT_SECRET for HS256 tokens, JWT_PUBLIC_KEY for RS256 or ES256)',
    });
  if (jwt.publicKey !== undefined) {
    const problem = publicKeyProblem(jwt.publicKey);
    if (problem) ctx.addIssue({ code: 'custom', path: ['auth', 'jwt', 'publicKey'], message: problem });
  }
  if (config.metrics.auth === 'admin' && config.auth.adminKey === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['metrics', 'auth'],
      message: 'METRICS_AUTH=admin needs ADMIN_API_KEY (the key Prometheus then sends as a bearer token)',
    });
  if (config.cache.mode === 'redis' && config.redis.url === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['cache', 'mode'],
      message: 'CACHE=redis needs REDIS_URL (the Redis the replicas share); use CACHE=memory for one process',
    });
  for (const issue of keyStrengthIssues(config.server, config.auth))
    ctx.addIssue({ code: 'custom', ...issue });
  const { jsonTotalMs: _json, ...global } = config.routing.timeouts;
  const endpoints = config.endpoints.map((ep) => ({
    // The optional settings present (as undefined when not set): every endpoint has one shape.
    ...OPTIONAL_ENDPOINT_SETTINGS,
    ...ep,
    name: ep.name ?? uniqueName(new URL(ep.url).host, used),
    timeouts: { ...global, ...definedOnly(ep.timeouts ?? {}) },
  }));
  return { ...config, endpoints } satisfies Shape;
});

/** What in the configuration needs shared counters, in words; undefined if nothing does. */
export function limitedBy(config: Pick<Shape, 'limits' | 'keys'>): string | undefined {
  const { limits, keys } = config;
  if (limits.global && Object.keys(limits.global).length > 0) return 'limits.global is set';
  if (Object.keys(limits.models).length > 0) return 'limits.models is set';
  if (limits.keyDefaults && Object.keys(limits.keyDefaults).length > 0) return 'limits.keyDefaults is set';
  if (keys.claim.enabled) return 'keys.claim is enabled (claims per address and its key limits)';
  return undefined;
}

const OPTIONAL_ENDPOINT_SETTINGS: Readonly<Record<string, undefined>> = {
  apiKey: undefined,
  apiVersion: undefined,
  deployments: undefined,
  defaultMaxTokens: undefined,
  models: undefined,
  maxConcurrent: undefined,
  modelNames: undefined,
};

/** Shortest key accepted on an address other machines can reach. */
export const MIN_KEY_LENGTH = 16;

/** Whether only this machine can connect to `host`. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\./.test(h);
}

/** What is wrong with a key for a gateway that other machines can reach, if anything. Never the key. */
export function keyWeakness(key: string): string | undefined {
  if (/^(change[-_]?me|replace[-_]?me|your[-_])/i.test(key)) return 'is a placeholder from the examples';
  if (key.length < MIN_KEY_LENGTH) return `is only ${key.length} characters long`;
  return undefined;
}

const ORDINALS = ['1st', '2nd', '3rd'];

/**
 * Placeholder or short keys are refused when HOST is not a loopback address, unless ALLOW_WEAK_KEYS:
 * a deployment file whose keys were never edited cannot go live.
 */
export function keyStrengthIssues(
  server: { host: string },
  auth: {
    apiKeys: readonly string[];
    adminKey: string | undefined;
    disabled: boolean;
    allowWeakKeys: boolean;
  },
): Array<{ path: string[]; message: string }> {
  const { host } = server;
  if (auth.allowWeakKeys || isLoopbackHost(host)) return [];
  const issues: Array<{ path: string[]; message: string }> = [];
  const advice =
    `HOST ${host} lets other machines connect, so keys must be random and at least ${MIN_KEY_LENGTH} ` +
    'characters long (for example `openssl rand -hex 24`); set ALLOW_WEAK_KEYS=true to start anyway';
  if (!auth.disabled) {
    auth.apiKeys.forEach((key, i) => {
      const weakness = keyWeakness(key);
      const which = auth.apiKeys.length === 1 ? 'the key' : `the ${ORDINALS[i] ?? `${i + 1}th`} key`;
      if (weakness) issues.push({ path: ['auth', 'apiKeys'], message: `${which} ${weakness}. ${advice}` });
    });
  }
  const weakness = auth.adminKey === undefined ? undefined : keyWeakness(auth.adminKey);
  if (weakness) issues.push({ path: ['auth', 'adminKey'], message: `the key ${weakness}. ${advice}` });
  return issues;
}

/**
 * The key check on its own, for a configuration that failed elsewhere (the schema's final transform,
 * which runs it otherwise, does not run then): every problem is reported at once.
 */
export function keyStrengthIssuesOf(raw: { server?: unknown; auth?: unknown }) {
  const server = configShape.shape.server.safeParse(raw.server);
  const auth = configShape.shape.auth.safeParse(raw.auth);
  return server.success && auth.success ? keyStrengthIssues(server.data, auth.data) : [];
}

function uniqueName(base: string, used: Set<string>): string {
  let name = base;
  for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
  used.add(name);
  return name;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;

/**
 * An endpoint added at runtime (admin API), checked like one of the config file and completed like
 * them (the global timeouts under its own), or the problems in words, each naming its field.
 */
export function runtimeEndpoint(
  spec: unknown,
  routing: { timeouts: Shape['routing']['timeouts'] },
):
  | { ok: true; endpoint: z.output<typeof configSchema>['endpoints'][number] }
  | { ok: false; problems: string[] } {
  const result = endpointSchema.safeParse(spec);
  if (!result.success)
    return {
      ok: false,
      problems: result.error.issues.map((issue) => {
        const field = issue.path.map(String).join('.');
        return field ? `${field}: ${issue.message}` : issue.message;
      }),
    };
  const ep = result.data;
  if (ep.name === undefined)
    return { ok: false, problems: ['name: an endpoint added at runtime needs a name'] };
  const { jsonTotalMs: _json, ...global } = routing.timeouts;
  return {
    ok: true,
    endpoint: {
      ...OPTIONAL_ENDPOINT_SETTINGS,
      ...ep,
      name: ep.name,
      timeouts: { ...global, ...definedOnly(ep.timeouts ?? {}) },
    },
  };
}

/** Why a JWT_PUBLIC_KEY cannot verify tokens (not PEM, or not an RSA or EC public key), if it cannot. */
function publicKeyProblem(pem: string): string | undefined {
  let key;
  try {
    key = createPublicKey(pem.replace(/\\n/g, '\n'));
  } catch {
    return 'JWT_PUBLIC_KEY is not a PEM public key (-----BEGIN PUBLIC KEY----- …); \\n in a one-line value is read as a line break';
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec')
    return `JWT_PUBLIC_KEY is a ${key.asymmetricKeyType ?? 'unknown'} key: RS256 needs an RSA key, ES256 a P-256 EC key`;
  return undefined;
}
