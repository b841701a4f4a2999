import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const SERVICE = 'akash-llm-gateway';

/**
 * Everything that could hold a secret. Serializers below never emit headers, but redaction is the safety
 * net for anything a developer logs by accident.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'authorization',
  'apiKey',
  'apiKeys',
  'adminKey',
  '*.apiKey',
  '*.apiKeys',
  '*.adminKey',
  '*.authorization',
  'endpoints[*].apiKey',
];

export interface LoggerOptions {
  level: string;
  file?: { path: string } | undefined;
  /** Extra destination, used by tests to capture log lines. */
  stream?: DestinationStream;
  /** Put the process id on every line (several worker processes write to one output). */
  pid?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    base: options.pid ? { service: SERVICE, pid: process.pid } : { service: SERVICE },
    timestamp: isoTimestamp(),
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const redacted = { ...base, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (options.stream) return withAccessLogger(pino(redacted, options.stream), pino(base, options.stream));
  // Asynchronous destinations: logging must never block the event loop on a slow terminal or disk.
  // They are given bytes (see LineBatches), not strings.
  const destinations = [pino.destination({ dest: 1, sync: false, contentMode: 'buffer' })];
  if (options.file) {
    assertWritable(options.file.path);
    destinations.push(pino.destination({ dest: options.file.path, sync: false, contentMode: 'buffer' }));
  }
  const batches = new LineBatches(destinations as unknown as Destination[]);
  // A disk that fills up later must not take the gateway down: report on stderr and carry on without
  // that destination. Kept, it would buffer every later line in memory and, at exit, retry its
  // synchronous flush forever (sonic-boom retries any write error there), so the process would hang.
  const names = ['stdout', options.file?.path];
  destinations.forEach((d, i) => {
    d.on('error', (err: Error) => {
      if (!batches.drop(d as unknown as Destination)) return;
      process.stderr.write(`log write failed (${names[i]}): ${err.message}; no more log lines go there\n`);
      d.destroy();
    });
  });
  // Whatever is still buffered is written out when the process exits (after SIGTERM, on a fatal error).
  process.once('exit', () => batches.flushSync());
  return withAccessLogger(pino(redacted, batches), pino(base, batches));
}

/** What code on the request path logs through: an object of fields, and a message. */
export interface LineLog {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/**
 * A request's logger: its lines carry the request id (`reqId`) and take the redaction pass like every
 * line but access lines. The child logger is made on the first line: most requests log nothing but
 * their access line.
 */
export class RequestLog implements LineLog {
  private child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    readonly reqId: string,
  ) {}

  debug(fields: object, msg: string): void {
    if (this.parent.isLevelEnabled('debug')) this.logger().debug(fields, msg);
  }

  info(fields: object, msg: string): void {
    if (this.parent.isLevelEnabled('info')) this.logger().info(fields, msg);
  }

  warn(fields: object, msg: string): void {
    if (this.parent.isLevelEnabled('warn')) this.logger().warn(fields, msg);
  }

  error(fields: object, msg: string): void {
    if (this.parent.isLevelEnabled('error')) this.logger().error(fields, msg);
  }

  private logger(): Logger {
    return (this.child ??= this.parent.child({ reqId: this.reqId }));
  }
}

const ACCESS_LOGGERS = new WeakMap<Logger, Logger>();

/**
 * Access lines are built from an allow-list of fields (never headers or bodies), so they skip the
 * redaction pass every other line takes (about 5% of the gateway's CPU): they go through a sibling
 * logger without it, to the same destination, at the same level.
 */
function withAccessLogger(logger: Logger, access: Logger): Logger {
  ACCESS_LOGGERS.set(logger, access);
  logger.on('level-change', (level) => (access.level = level));
  return logger;
}

/** The logger for access lines of `logger` (itself when it has no sibling, as a test's own logger). */
export function accessLoggerOf(logger: Logger): Logger {
  return ACCESS_LOGGERS.get(logger) ?? logger;
}

/**
 * pino's `,"time":"<ISO 8601>"` with the date and time formatted once per second (pino's isoTime makes
 * a Date and formats it for every line).
 */
export function isoTimestamp(clock: () => number = Date.now): () => string {
  const iso = new IsoClock(clock);
  return () => `,"time":"${iso.now()}"`;
}

/** ISO 8601 UTC times with milliseconds, the date part formatted once per second. */
export class IsoClock {
  private second = Number.NaN;
  private prefix = '';

  constructor(private readonly clock: () => number) {}

  now(): string {
    const ms = this.clock();
    const second = Math.floor(ms / 1000);
    if (second !== this.second) {
      this.second = second;
      // "2026-12-01T22:05:23." from "2026-12-01T22:05:23.000Z"
      this.prefix = new Date(second * 1000).toISOString().slice(0, -4);
    }
    const rest = ms - second * 1000;
    return `${this.prefix}${rest < 10 ? '00' : rest < 100 ? '0' : ''}${rest}Z`;
  }
}

/** What LineBatches writes to: a pino destination (sonic-boom) in buffer mode. */
export interface Destination {
  write(bytes: Buffer): unknown;
  flush(callback?: (err?: Error | null) => void): void;
  flushSync(): void;
}

/** Lines are gathered this long and written together: at most this many ms late, one write per batch. */
const BATCH_MS = 20;
/** Log bytes are gathered in chunks of this size (a longer line gets a chunk of its own). */
const CHUNK_BYTES = 64 * 1024;

/**
 * Log lines are written in batches to every destination (stdout, and the log file when FILE_LOGGING is
 * on): an asynchronous write costs a thread-pool round trip, far more than formatting a line, so a busy
 * gateway makes one write every BATCH_MS rather than one per line.
 *
 * Each line is encoded into a byte chunk as it comes, and a batch is a slice of that chunk: no string
 * is kept until the batch is written (a line built piece by piece is a tree of string fragments, which
 * would otherwise survive young collections while it waits), and the destinations write bytes as they
 * are, without encoding (and measuring) the batch again. The written part of a chunk is never
 * overwritten: lines go after it, and a full chunk is replaced by a new one.
 */
export class LineBatches implements DestinationStream {
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  /** Where the next line goes in `chunk`. */
  private end = 0;
  /** Where the bytes not yet handed to the destinations start in `chunk`. */
  private start = 0;
  private scheduled = false;

  private destinations: readonly Destination[];

  constructor(destinations: readonly Destination[]) {
    this.destinations = destinations;
  }

  write(line: string): void {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    const room = line.length * 3;
    if (this.end + room > this.chunk.length) this.nextChunk(room);
    this.end += this.chunk.write(line, this.end);
    if (this.scheduled) return;
    this.scheduled = true;
    setTimeout(this.writeBatch, BATCH_MS).unref();
  }

  /**
   * logger.flush(): what is gathered goes to the destinations; `callback` runs once every destination
   * has written what it holds (write errors are reported by the destinations themselves).
   */
  flush(callback?: () => void): void {
    this.writeBatch();
    let pending = this.destinations.length;
    const done = () => {
      if (--pending === 0) callback?.();
    };
    if (pending === 0) callback?.();
    for (const d of this.destinations) flushOne(d, done);
  }

  /** Stops writing to `d` (it failed); false if it was already dropped. */
  drop(d: Destination): boolean {
    if (!this.destinations.includes(d)) return false;
    this.destinations = this.destinations.filter((other) => other !== d);
    return true;
  }

  flushSync(): void {
    this.writeBatch();
    for (const d of this.destinations) {
      try {
        d.flushSync();
      } catch {
        // A destination that is not open yet has nothing to flush.
      }
    }
  }

  /** The chunk is full: what it gathered goes out, and lines go to a new chunk. */
  private nextChunk(room: number): void {
    this.handOver();
    this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, room));
    this.start = 0;
    this.end = 0;
  }

  private readonly writeBatch = (): void => {
    this.scheduled = false;
    this.handOver();
  };

  private handOver(): void {
    if (this.end === this.start) return;
    const batch = this.chunk.subarray(this.start, this.end);
    this.start = this.end;
    for (const d of this.destinations) d.write(batch);
  }
}

function flushOne(d: Destination, done: () => void): void {
  try {
    d.flush(() => done());
  } catch {
    // Not open yet: it writes what it holds once it is.
    done();
  }
}

export class LogFileError extends Error {
  constructor(file: string, cause: NodeJS.ErrnoException) {
    super(
      `LOG_FILE ${file}: cannot be written (${cause.code ?? cause.message}); fix the path or set FILE_LOGGING=false`,
    );
    this.name = 'LogFileError';
  }
}

/** Opens the log file once, synchronously, so a bad path stops start-up with a clear message. */
function assertWritable(file: string): void {
  try {
    makeDirectory(path.dirname(path.resolve(file)));
    closeSync(openSync(file, 'a'));
  } catch (err) {
    throw new LogFileError(file, err as NodeJS.ErrnoException);
  }
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir loops forever where a parent exists but refuses
 * new entries with ENOENT (anywhere under /proc), and start-up would hang at full CPU.
 */
function makeDirectory(dir: string): void {
  if (existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) makeDirectory(parent);
  mkdirSync(dir);
}
