import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type { Redis, RedisOptions } from 'ioredis';

/** Loaded only when Redis is configured: its code stays out of a gateway without it. */
const loadRedis = () => (createRequire(import.meta.url)('ioredis') as typeof IORedis).Redis;
import {
  SLOT_LEASE_MS,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';
import { withoutPassword } from '../../config/config-problems.js';
import { ADMIT, SEPARATOR, SPEND } from './redis-scripts.js';

const KIND_CODE = { count: 'c', sum: 's', slots: 'l', budget: 'b' } as const;
/** Admissions per script call: a batch must not hold Redis (single-threaded) for long. */
const MAX_BATCH = 200;
/** Bound of the caches of encoded keys and checks (a reload or many keys start them anew). */
const MAX_CACHED = 10_000;

type ScriptedRedis = Redis & {
  gwAdmit(keys: number, ...args: Array<string | number>): Promise<string[]>;
  gwSpend(keys: number, ...args: Array<string | number>): Promise<number>;
};

interface PendingAdmission {
  id: string;
  checks: readonly CounterCheck[];
  resolve: (result: AdmitResult) => void;
  reject: (err: unknown) => void;
}

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
  /** A key of the gateway's hash slot: where Redis Cluster sends its scripts. */
  private readonly routeKey: string;
  private readonly now: (() => number) | undefined;

  constructor(private readonly options: RedisCountersOptions) {
    this.prefix = options.prefix ?? 'llm-gateway:{gw}:';
    this.channel = `${this.prefix}peers`;
    this.routeKey = `${this.prefix}route`;
    this.now = options.now;
    const RedisClient = loadRedis();
    this.redis = new RedisClient(options.url, this.clientOptions()) as ScriptedRedis;
    this.redis.on('error', (err: Error) => options.onError?.(err));
    this.redis.defineCommand('gwAdmit', { lua: ADMIT });
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

  /**
   * Admissions are sent in batches: every admission asked for in one turn of the event loop goes in
   * one script call (one round trip, one command for Redis and for this process to encode and parse),
   * and each is still checked and counted atomically, in the order asked.
   */
  admit(id: string, checks: readonly CounterCheck[]): Promise<AdmitResult> {
    return new Promise((resolve, reject) => {
      this.admissions.push({ id, checks, resolve, reject });
      this.schedule();
    });
  }

  private admissions: PendingAdmission[] = [];
  private scheduled = false;

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /**
   * One script call per turn of the event loop: the ends of earlier admissions (releases, corrections,
   * renewals) first, then the new admissions, each still checked and counted atomically, in order.
   */
  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.admissions;
    const ops = this.settles;
    const waiting = this.settled;
    this.admissions = [];
    this.settles = [];
    this.settled = [];
    let opAt = 0;
    for (let i = 0; i < batch.length || opAt < ops.length; i += MAX_BATCH) {
      const these = ops.slice(opAt, opAt + MAX_BATCH * 4);
      opAt += these.length;
      const last = i + MAX_BATCH >= batch.length && opAt >= ops.length;
      void this.send(batch.slice(i, i + MAX_BATCH), these, last ? waiting : []);
    }
  };

  private async send(
    batch: readonly PendingAdmission[],
    ops: readonly string[],
    waiting: ReadonlyArray<{ resolve: () => void; reject: (err: unknown) => void }>,
  ): Promise<void> {
    const args: Array<string | number> = [this.clock(), SLOT_LEASE_MS, ops.length];
    for (const o of ops) args.push(o);
    for (const { id, checks } of batch) {
      let admission = id;
      for (const c of checks) admission += this.encoded(c) + String(c.kind === 'sum' ? c.amount : 1);
      args.push(admission);
    }
    let out: string[];
    try {
      out = await this.redis.gwAdmit(1, this.routeKey, ...args);
    } catch (err) {
      for (const a of batch) a.reject(err);
      for (const w of waiting) w.reject(err);
      return;
    }
    for (const w of waiting) w.resolve();
    const now = Number(out[0]);
    batch.forEach(({ checks, resolve }, i) => {
      const f = out[i + 1]!.split(SEPARATOR);
      const states: CheckState[] = [];
      for (let j = 0; j < checks.length; j++)
        states.push({ remaining: Number(f[3 + j * 2]), resetMs: Number(f[4 + j * 2]) });
      if (f[0] === '1') {
        resolve({ ok: true, states });
        return;
      }
      const retryAt = Number(f[2]);
      resolve({
        ok: false,
        index: Number(f[1]) - 1,
        retryAfterMs: retryAt < 0 ? Number.POSITIVE_INFINITY : Math.max(0, retryAt - now),
        states,
      });
    });
  }

  /** A counter's Redis key: the prefix, and the name without the separator the scripts split on. */
  private keyOf(key: string): string {
    let full = this.keys.get(key);
    if (full === undefined) {
      full = this.prefix + (key.includes(SEPARATOR) ? key.replaceAll(SEPARATOR, '_') : key);
      if (this.keys.size >= MAX_CACHED) this.keys.clear();
      this.keys.set(key, full);
    }
    return full;
  }

  /** Counter keys with their prefix: a request's keys are the same as the last request's. */
  private readonly keys = new Map<string, string>();

  /**
   * A check as the script reads it, up to its amount (separator, key, kind, limit, window, separator):
   * made once per key and limit rather than on every request.
   */
  private encoded(c: CounterCheck): string {
    const windowMs = c.kind === 'count' || c.kind === 'sum' ? c.windowMs : 0;
    const known = this.checks.get(c.key);
    if (
      known !== undefined &&
      known.kind === c.kind &&
      known.limit === c.limit &&
      known.windowMs === windowMs
    )
      return known.text;
    const text =
      SEPARATOR +
      this.keyOf(c.key) +
      SEPARATOR +
      KIND_CODE[c.kind] +
      SEPARATOR +
      String(c.limit) +
      SEPARATOR +
      String(windowMs) +
      SEPARATOR;
    if (this.checks.size >= MAX_CACHED) this.checks.clear();
    this.checks.set(c.key, { kind: c.kind, limit: c.limit, windowMs, text });
    return text;
  }

  private readonly checks = new Map<
    string,
    { kind: CounterCheck['kind']; limit: number; windowMs: number; text: string }
  >();

  /** Releases, corrections and renewals: sent with the next admissions (or alone, in the same turn). */
  private settles: string[] = [];
  private settled: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

  /** One settle operation as the script reads it: op, key, id (and an amount), separated. */
  private op(op: 'r' | 'c' | 'w', key: string, id: string, amount?: number): string {
    return (
      op +
      SEPARATOR +
      this.keyOf(key) +
      SEPARATOR +
      id +
      (op === 'c' ? SEPARATOR + String(Math.round(amount ?? 0)) : '')
    );
  }

  private settle(ops: readonly string[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      for (const o of ops) this.settles.push(o);
      this.settled.push({ resolve, reject });
      this.schedule();
    });
  }

  correct(id: string, keys: readonly string[], amount: number): Promise<void> {
    return this.settle(keys.map((key) => this.op('c', key, id, amount)));
  }

  release(id: string, keys: readonly string[]): Promise<void> {
    return this.settle(keys.map((key) => this.op('r', key, id)));
  }

  renew(held: ReadonlyArray<{ id: string; slotKeys: readonly string[] }>): Promise<void> {
    return this.settle(held.flatMap(({ id, slotKeys }) => slotKeys.map((key) => this.op('w', key, id))));
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
    const RedisClient = loadRedis();
    const subscriber = new RedisClient(this.options.url, {
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
