import { Redis, type RedisOptions } from 'ioredis';
import {
  SLOT_LEASE_MS,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';
import { withoutPassword } from '../../config/config-problems.js';
import { ADMIT, CORRECT, RENEW, SPEND } from './redis-scripts.js';

const KIND_CODE = { count: 'c', sum: 's', slots: 'l', budget: 'b' } as const;

type ScriptedRedis = Redis & {
  gwAdmit(keys: number, ...args: Array<string | number>): Promise<string[]>;
  gwCorrect(keys: number, ...args: Array<string | number>): Promise<number>;
  gwRenew(keys: number, ...args: Array<string | number>): Promise<number>;
  gwSpend(keys: number, ...args: Array<string | number>): Promise<number>;
};

export interface RedisCountersOptions {
  url: string;
  /** Prefix of every key and of the peer channel: several gateways may share one Redis. */
  prefix?: string;
  /** A clock for tests; Redis's own `TIME` otherwise, so that replicas agree whatever their clocks. */
  now?: () => number;
  /** Connection problems (the client reconnects by itself); commands fail at once meanwhile. */
  onError?: (err: Error) => void;
  /** Longest wait for one command before it fails (the request goes on per limits.onStoreError). */
  commandTimeoutMs?: number;
}

/**
 * Counters in Redis, shared by every replica: each request's limits are checked and counted by one
 * Lua script (`redis-scripts.ts`). While Redis is unreachable, commands fail at once rather than
 * queue, so that requests are not held up (what then happens is limits.onStoreError's choice).
 */
export class RedisCounters implements CounterStore {
  readonly backend = 'redis' as const;
  private readonly redis: ScriptedRedis;
  private subscriber: Redis | undefined;
  private readonly handlers: Array<(message: PeerMessage) => void> = [];
  private readonly prefix: string;
  private readonly channel: string;
  private readonly now: (() => number) | undefined;

  constructor(private readonly options: RedisCountersOptions) {
    this.prefix = options.prefix ?? 'llm-gateway:{gw}:';
    this.channel = `${this.prefix}peers`;
    this.now = options.now;
    this.redis = new Redis(options.url, this.clientOptions()) as ScriptedRedis;
    this.redis.on('error', (err: Error) => options.onError?.(err));
    this.redis.defineCommand('gwAdmit', { lua: ADMIT });
    this.redis.defineCommand('gwCorrect', { lua: CORRECT });
    this.redis.defineCommand('gwRenew', { lua: RENEW });
    this.redis.defineCommand('gwSpend', { lua: SPEND });
  }

  private clientOptions(): RedisOptions {
    return {
      // Fail fast while disconnected: a request must not wait for Redis to come back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: this.options.commandTimeoutMs ?? 1_000,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(1_000, 50 * times),
      lazyConnect: false,
    };
  }

  /** Calls `handler` each time the connection is (re-)established. */
  onReady(handler: () => void): void {
    this.redis.on('ready', handler);
  }

  /**
   * Resolves once connected; rejects at the first connection error or after 5 s (start-up says so and
   * goes on: the client keeps reconnecting).
   */
  async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const fail = (reason: string) => {
        cleanup();
        reject(new Error(`could not connect to Redis at ${withoutPassword(this.options.url)}: ${reason}`));
      };
      const timer = setTimeout(() => fail('no answer within 5 s'), 5_000);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onError = (err: Error) => fail(err.message);
      const cleanup = () => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.redis.off('error', onError);
      };
      this.redis.on('ready', onReady);
      this.redis.on('error', onError);
    });
  }

  async admit(id: string, checks: readonly CounterCheck[]): Promise<AdmitResult> {
    const keys = checks.map((c) => this.prefix + c.key);
    const args: Array<string | number> = [this.clock(), id, SLOT_LEASE_MS];
    for (const c of checks)
      args.push(
        KIND_CODE[c.kind],
        c.limit,
        c.kind === 'count' || c.kind === 'sum' ? c.windowMs : 0,
        c.kind === 'sum' ? c.amount : 1,
      );
    const out = await this.redis.gwAdmit(keys.length, ...keys, ...args);
    const ok = out[0] === '1';
    const states: CheckState[] = [];
    for (let i = 0; i < checks.length; i++)
      states.push({ remaining: Number(out[3 + i * 2]), resetMs: Number(out[4 + i * 2]) });
    if (ok) return { ok, states };
    const retryAt = Number(out[2]);
    const now = Number(out[3 + checks.length * 2]);
    return {
      ok: false,
      index: Number(out[1]) - 1,
      retryAfterMs: retryAt < 0 ? Number.POSITIVE_INFINITY : Math.max(0, retryAt - now),
      states,
    };
  }

  async correct(id: string, keys: readonly string[], amount: number): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.gwCorrect(keys.length, ...keys.map((k) => this.prefix + k), id, Math.round(amount));
  }

  async release(id: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.zrem(this.prefix + key, id);
    await pipeline.exec();
  }

  async renew(held: ReadonlyArray<{ id: string; slotKeys: readonly string[] }>): Promise<void> {
    const keys: string[] = [];
    const ids: string[] = [];
    for (const { id, slotKeys } of held)
      for (const key of slotKeys) {
        keys.push(this.prefix + key);
        ids.push(id);
      }
    // In batches: a script's arguments are bounded, and one batch must not hold Redis long.
    for (let i = 0; i < keys.length; i += 500)
      await this.redis.gwRenew(
        Math.min(500, keys.length - i),
        ...keys.slice(i, i + 500),
        this.clock(),
        SLOT_LEASE_MS,
        ...ids.slice(i, i + 500),
      );
  }

  async spend(
    entries: ReadonlyArray<{ key: string; ttlMs: number | undefined }>,
    amount: number,
  ): Promise<void> {
    if (entries.length === 0 || amount === 0) return;
    await this.redis.gwSpend(
      entries.length,
      ...entries.map((e) => this.prefix + e.key),
      String(amount),
      ...entries.map((e) => (e.ttlMs === undefined ? '' : Math.max(1, Math.round(e.ttlMs)))),
    );
  }

  async spent(key: string): Promise<number> {
    return Number((await this.redis.get(this.prefix + key)) ?? 0);
  }

  async publish(message: PeerMessage): Promise<void> {
    await this.redis.publish(this.channel, JSON.stringify(message));
  }

  private subscribed: Promise<void> | undefined;

  onMessage(handler: (message: PeerMessage) => void): Promise<void> {
    this.handlers.push(handler);
    if (this.subscribed) return this.subscribed;
    const subscriber = new Redis(this.options.url, {
      ...this.clientOptions(),
      // A subscriber waits for messages: no command timeout, and it resubscribes after reconnecting.
      commandTimeout: undefined,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
    });
    this.subscriber = subscriber;
    subscriber.on('error', (err: Error) => this.options.onError?.(err));
    subscriber.on('message', (_channel: string, text: string) => {
      let message: PeerMessage;
      try {
        message = JSON.parse(text) as PeerMessage;
      } catch {
        return;
      }
      if (message === null || typeof message !== 'object' || typeof message.type !== 'string') return;
      for (const h of this.handlers) h(message);
    });
    this.subscribed = subscriber.subscribe(this.channel).then(
      () => undefined,
      (err: unknown) => this.options.onError?.(err as Error),
    );
    return this.subscribed;
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private clock(): string | number {
    return this.now ? this.now() : '';
  }
}
