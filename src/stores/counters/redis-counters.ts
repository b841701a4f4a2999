import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type { Redis, RedisOptions } from 'ioredis';

/** Loaded only when Redis is configured: its code stays out of a gateway without it. */
const loadRedis = () => (createRequire(import.meta.url)('ioredis') as typeof IORedis).Redis;
import {
  bucketMs,
  SLOT_LEASE_MS,
  Ticket,
  type AdmitResult,
  type CounterCheck,
  type CounterStore,
  type PeerMessage,
} from './counter-store.js';
import { withoutPassword } from '../../config/config-problems.js';
import {
  ADMIT,
  admittedStates,
  FieldReader,
  RECORD,
  refusedStates,
  SEPARATOR,
  SPEND,
} from './redis-scripts.js';

const KIND_CODE = { count: 'c', sum: 's', slots: 'l', budget: 'b' } as const;
/** Admissions per script call: a batch must not hold Redis (single-threaded) for long. */
const MAX_BATCH = 200;
/** Admission ids per release or renewal operation (the script passes them to one command). */
const MAX_IDS_PER_OP = 500;
/** The longest the end of an admission waits to ride with the next admissions' script call. */
const SETTLE_DELAY_MS = 20;
/** Bound of the caches of encoded keys and checks (a reload or many keys start them anew). */
const MAX_CACHED = 10_000;

type ScriptedRedis = Redis & {
  gwAdmit(keys: number, ...args: Array<string | number>): Promise<string>;
  gwSpend(keys: number, ...args: Array<string | number>): Promise<number>;
};

interface PendingAdmission {
  id: string;
  checks: readonly CounterCheck[];
  amount: number;
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
  admit(id: string, checks: readonly CounterCheck[], amount = 0): Promise<AdmitResult> {
    return new Promise((resolve, reject) => {
      // Whole amounts: the script adds them with HINCRBY.
      this.admissions.push({ id, checks, amount: Math.round(amount), resolve, reject });
      this.schedule();
    });
  }

  private admissions: PendingAdmission[] = [];
  private scheduled = false;

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    setImmediate(this.flush);
  }

  /**
   * The ends of admissions (releases, corrections, renewals) wait for the next admissions' script
   * call, at most SETTLE_DELAY_MS: under load one script call per turn carries both, rather than a
   * second round trip for the ends alone. Holding a slot a little longer is never wrong: another
   * admission of this process sends the release first, in the same script.
   */
  private scheduleSettles(): void {
    if (this.scheduled || this.settleTimer !== undefined) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.schedule();
    }, SETTLE_DELAY_MS);
    this.settleTimer.unref();
  }

  private settleTimer: NodeJS.Timeout | undefined;

  /**
   * One script call per turn of the event loop: the ends of earlier admissions (releases, corrections,
   * renewals) first, then the new admissions, each still checked and counted atomically, in order.
   */
  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.admissions;
    const ops: string[] = [];
    for (const [op, byKey] of [
      ['r', this.releases],
      ['w', this.renewals],
    ] as const)
      for (const [key, ids] of byKey)
        for (let i = 0; i < ids.length; i += MAX_IDS_PER_OP)
          ops.push(op + SEPARATOR + key + SEPARATOR + ids.slice(i, i + MAX_IDS_PER_OP).join(SEPARATOR));
    for (const [key, buckets] of this.adjustments)
      for (const [bucket, delta] of buckets)
        if (delta !== 0)
          ops.push('a' + SEPARATOR + key + SEPARATOR + String(bucket) + SEPARATOR + String(delta));
    const waiting = this.ends;
    this.admissions = [];
    this.releases.clear();
    this.renewals.clear();
    this.adjustments.clear();
    this.ends = undefined;
    let opAt = 0;
    for (let i = 0; i < batch.length || opAt < ops.length; i += MAX_BATCH) {
      const these = ops.slice(opAt, opAt + MAX_BATCH * 4);
      opAt += these.length;
      const last = i + MAX_BATCH >= batch.length && opAt >= ops.length;
      void this.send(batch.slice(i, i + MAX_BATCH), these, last ? waiting : undefined);
    }
  };

  private async send(
    batch: readonly PendingAdmission[],
    ops: readonly string[],
    waiting: Ends | undefined,
  ): Promise<void> {
    // The batch's distinct checks go once; each admission names them by number (a batch's requests
    // mostly share their key's, team's and the global checks, and mostly come with the same array of
    // checks: its numbers are written once per batch).
    const numbers = new Map<string, string>();
    const numbered = new Map<readonly CounterCheck[], string>();
    const table: string[] = [];
    const plans: string[] = [];
    const admissions: string[] = [];
    for (const { id, checks, amount } of batch) {
      let plan = numbered.get(checks);
      if (plan === undefined) {
        const names: string[] = [];
        for (const c of checks) {
          const text = this.encoded(c);
          let n = numbers.get(text);
          if (n === undefined) {
            table.push(text);
            n = String(table.length);
            numbers.set(text, n);
          }
          names.push(n);
        }
        plans.push(names.join(SEPARATOR));
        plan = String(plans.length);
        numbered.set(checks, plan);
      }
      admissions.push(id + SEPARATOR + String(amount) + SEPARATOR + plan);
    }
    let out: string[];
    try {
      out = (
        await this.redis.gwAdmit(
          1,
          this.routeKey,
          this.clock(),
          SLOT_LEASE_MS,
          ops.join(RECORD),
          table.join(RECORD),
          admissions.join(RECORD),
          plans.join(RECORD),
        )
      ).split(RECORD);
    } catch (err) {
      for (const a of batch) a.reject(err);
      waiting?.reject(err);
      return;
    }
    waiting?.resolve();
    const now = Number(out[0]);
    const fields = new FieldReader('');
    for (let i = 0; i < batch.length; i++) {
      const { id, checks, amount, resolve } = batch[i]!;
      // Read in place (no array of field strings per admission).
      fields.reset(out[i + 1]!);
      if (fields.next() === 1) {
        resolve({
          ok: true,
          states: admittedStates(checks, fields, now),
          ticket: new Ticket(id, now, checks, amount),
        });
        continue;
      }
      const index = fields.next() - 1;
      const retryAt = fields.next();
      const states = refusedStates(checks, fields);
      resolve({
        ok: false,
        index,
        retryAfterMs: retryAt < 0 ? Number.POSITIVE_INFINITY : Math.max(0, retryAt - now),
        states,
      });
    }
  }

  /**
   * A counter's Redis key: the prefix, and the name without the separator the scripts split on.
   * Windows (hashes of buckets) are named apart from the sorted sets earlier versions kept for them.
   */
  private keyOf(key: string, kind: CounterCheck['kind']): string {
    const window = kind === 'count' || kind === 'sum';
    const cache = window ? this.windowKeys : this.keys;
    let full = cache.get(key);
    if (full === undefined) {
      full =
        this.prefix + (key.includes(SEPARATOR) ? key.replaceAll(SEPARATOR, '_') : key) + (window ? ':b' : '');
      if (cache.size >= MAX_CACHED) cache.clear();
      cache.set(key, full);
    }
    return full;
  }

  /** Counter keys with their prefix: a request's keys are the same as the last request's. */
  private readonly keys = new Map<string, string>();
  private readonly windowKeys = new Map<string, string>();

  /**
   * A check as the script reads it (key, kind, limit, window, separated): made once per key and limit
   * rather than on every request.
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
      this.keyOf(c.key, c.kind) +
      SEPARATOR +
      KIND_CODE[c.kind] +
      SEPARATOR +
      String(c.limit) +
      SEPARATOR +
      String(windowMs);
    if (this.checks.size >= MAX_CACHED) this.checks.clear();
    this.checks.set(c.key, { kind: c.kind, limit: c.limit, windowMs, text });
    return text;
  }

  private readonly checks = new Map<
    string,
    { kind: CounterCheck['kind']; limit: number; windowMs: number; text: string }
  >();

  /**
   * The ends of admissions, sent with the next admissions (or alone, SETTLE_DELAY_MS later), grouped
   * per key (a turn's requests mostly end under the same keys): slots given back and renewed (key ->
   * admission ids), and corrections and take-backs summed per window bucket (key -> bucket ->
   * difference).
   */
  private readonly releases = new Map<string, string[]>();
  private readonly renewals = new Map<string, string[]>();
  private readonly adjustments = new Map<string, Map<number, number>>();
  /** The ends queued since the last script call: one promise for all of them. */
  private ends: Ends | undefined;

  /**
   * Resolves once the queued ends have been sent with a script call. Every end queued before that call
   * gets the same promise (many requests end between two calls: one promise, not one each).
   */
  private settle(): Promise<void> {
    if (this.ends === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.ends = { promise, resolve, reject };
    }
    this.scheduleSettles();
    return this.ends.promise;
  }

  /**
   * Gives an admission a new weight under each of `keys`: a difference added to the bucket of its
   * window that holds it, or (a slot) the slot given back. False when nothing changes.
   */
  private reweigh(ticket: Ticket, keys: readonly string[], weight: number): boolean {
    let changed = false;
    for (const key of keys) {
      const i = ticket.indexOf(key);
      const c = ticket.checks[i];
      if (c === undefined) continue;
      if (c.kind === 'slots') {
        if (weight !== 0) continue;
        listOf(this.releases, this.keyOf(key, c.kind)).push(ticket.id);
        changed = true;
      } else if (c.kind === 'count' || c.kind === 'sum') {
        const delta = ticket.reweigh(i, Math.round(weight));
        if (delta === 0) continue;
        const full = this.keyOf(key, c.kind);
        let buckets = this.adjustments.get(full);
        if (buckets === undefined) this.adjustments.set(full, (buckets = new Map<number, number>()));
        const bucket = Math.floor(ticket.at / bucketMs(c.windowMs));
        buckets.set(bucket, (buckets.get(bucket) ?? 0) + delta);
        changed = true;
      }
    }
    return changed;
  }

  correct(ticket: Ticket, keys: readonly string[], amount: number): Promise<void> {
    return this.reweigh(ticket, keys, amount) ? this.settle() : Promise.resolve();
  }

  release(ticket: Ticket, keys: readonly string[]): Promise<void> {
    return this.reweigh(ticket, keys, 0) ? this.settle() : Promise.resolve();
  }

  renew(held: ReadonlyArray<{ ticket: Ticket; slotKeys: readonly string[] }>): Promise<void> {
    for (const { ticket, slotKeys } of held)
      for (const key of slotKeys) listOf(this.renewals, this.keyOf(key, 'slots')).push(ticket.id);
    return held.length === 0 ? Promise.resolve() : this.settle();
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
    // Ends still waiting for a script call are sent before the connection closes.
    if (this.releases.size + this.renewals.size + this.adjustments.size > 0) {
      const sent = this.settle().catch(() => undefined);
      this.schedule();
      await sent;
    }
    clearTimeout(this.settleTimer);
    this.subscriber?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private clock(): string | number {
    return this.now ? this.now() : '';
  }
}

/** The promise of the ends sent with one script call, and how to settle it. */
interface Ends {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function listOf(map: Map<string, string[]>, key: string): string[] {
  let list = map.get(key);
  if (list === undefined) map.set(key, (list = []));
  return list;
}
