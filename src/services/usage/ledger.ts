import type { Logger } from '../../observability/logger.js';
import type { RecordStore, UsageRecord } from '../../stores/records/record-store.js';

/** Records are written at most this long after their request finished. */
export const FLUSH_INTERVAL_MS = 1_000;
/** A batch this large is written at once, without waiting for the interval. */
const BATCH_RECORDS = 500;
/** Records kept while the store cannot take them (an outage); past this, new ones are dropped. */
const DEFAULT_MAX_QUEUED = 100_000;
const DAY_MS = 86_400_000;

export interface LedgerOptions {
  records: RecordStore;
  logger: Logger;
  now?: () => number;
  maxQueued?: number;
  /** Days of records kept; older ones are pruned once a day (and at start). */
  retentionDays: () => number;
}

/**
 * The usage ledger's writer: every finished request is one record, queued in memory and written in
 * batches at most a second apart (so a `kill -9` loses at most the last second), flushed on shutdown.
 * Recording never waits for the store: while it is unreachable, records wait in a bounded queue and go
 * in when it is back; past the bound, new records are dropped, counted and logged.
 */
export class UsageLedger {
  private queue: UsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failingSince: number | undefined;
  /** Records dropped because the queue was full (an outage longer than the queue). */
  dropped = 0;
  /** Records written since start. */
  written = 0;
  private readonly maxQueued: number;
  private readonly now: () => number;

  constructor(private readonly options: LedgerOptions) {
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
    void this.prune();
    this.pruneTimer = setInterval(() => void this.prune(), DAY_MS);
    this.pruneTimer.unref();
  }

  get queued(): number {
    return this.queue.length;
  }

  get status(): { queued: number; written: number; dropped: number; failingSince: string | null } {
    return {
      queued: this.queue.length,
      written: this.written,
      dropped: this.dropped,
      failingSince: this.failingSince === undefined ? null : new Date(this.failingSince).toISOString(),
    };
  }

  /** Queues one record; never waits, never throws. */
  record(record: UsageRecord): void {
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      // One line per thousand dropped: an outage does not flood the log.
      if (this.dropped % 1_000 === 1)
        this.options.logger.error(
          { dropped: this.dropped, queued: this.queue.length },
          'usage ledger queue full: records dropped until the store takes them again',
        );
      return;
    }
    this.queue.push(record);
    if (this.queue.length >= BATCH_RECORDS && !this.writing) void this.flush();
  }

  /** Writes what is queued (one write at a time); resolves when that write is over. */
  flush(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue;
    this.queue = [];
    this.writing = this.options.records
      .insertUsage(batch)
      .then(
        () => {
          this.written += batch.length;
          if (this.failingSince !== undefined) {
            this.options.logger.info(
              { unreachableForMs: this.now() - this.failingSince, written: batch.length },
              'usage ledger written again',
            );
            this.failingSince = undefined;
          }
        },
        (err: unknown) => {
          // Back to the front of the queue, within its bound: written when the store answers again.
          const room = Math.max(0, this.maxQueued - this.queue.length);
          const kept = batch.slice(batch.length - Math.min(room, batch.length));
          this.dropped += batch.length - kept.length;
          this.queue = kept.concat(this.queue);
          if (this.failingSince === undefined) {
            this.failingSince = this.now();
            this.options.logger.error(
              { err: (err as Error).message, queued: this.queue.length },
              'usage ledger cannot be written: records wait in memory until the store answers',
            );
          }
        },
      )
      .finally(() => {
        this.writing = undefined;
      });
    return this.writing;
  }

  private async prune(): Promise<void> {
    const before = this.now() - this.options.retentionDays() * DAY_MS;
    try {
      const pruned = await this.options.records.pruneUsage(before);
      if (pruned > 0)
        this.options.logger.info({ pruned, before: new Date(before).toISOString() }, 'usage records pruned');
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'could not prune old usage records');
    }
  }

  /** Stops the timers and writes everything queued (bounded by `timeoutMs`). */
  async stop(timeoutMs = 5_000): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.pruneTimer);
    const deadline = this.now() + timeoutMs;
    while ((this.queue.length > 0 || this.writing) && this.now() < deadline) {
      const before = this.written;
      await this.flush();
      if (this.failingSince !== undefined && this.written === before) break;
    }
    if (this.queue.length > 0)
      this.options.logger.error({ lost: this.queue.length }, 'usage records not written at shutdown');
  }
}
