import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const SERVICE = 'akash-llm-gateway';

/**
 * Everything that could hold a secret. Serializers below never emit headers, but redaction is the safety
 * net for anything a developer logs by accident.
 */
export const REDACT_PATHS = [
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
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: SERVICE },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (options.stream) return pino(base, options.stream);
  // Asynchronous destinations: logging must never block the event loop on a slow terminal or disk.
  const destinations = [pino.destination({ dest: 1, sync: false })];
  if (options.file) {
    assertWritable(options.file.path);
    destinations.push(pino.destination({ dest: options.file.path, sync: false, mkdir: true }));
  }
  const batches = new LineBatches(destinations);
  // A disk that fills up later must not take the gateway down: report on stderr and carry on.
  for (const d of destinations)
    d.on('error', (err: Error) => process.stderr.write(`log write failed: ${err.message}\n`));
  // Whatever is still buffered is written out when the process exits (after SIGTERM, on a fatal error).
  process.once('exit', () => batches.flushSync());
  return pino(base, batches);
}

/** What LineBatches writes to: a pino destination (sonic-boom). */
export type Destination = Pick<ReturnType<typeof pino.destination>, 'write' | 'flush' | 'flushSync'>;

/** Lines are gathered this long and written together: at most this many ms late, one write per batch. */
const BATCH_MS = 20;

/**
 * Log lines are written in batches, as one string, to every destination (stdout, and the log file when
 * FILE_LOGGING is on): an asynchronous write costs a thread-pool round trip, far more than formatting a
 * line, so a busy gateway makes one write every BATCH_MS rather than one per line.
 */
export class LineBatches implements DestinationStream {
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly destinations: readonly Destination[]) {}

  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setTimeout(this.writeBatch, BATCH_MS).unref();
  }

  /** logger.flush(): what is gathered goes to the destinations, which start writing it. */
  flush(): void {
    this.writeBatch();
    for (const d of this.destinations) flushOne(d);
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

  private readonly writeBatch = (): void => {
    this.scheduled = false;
    const lines = this.pending;
    if (lines.length === 0) return;
    this.pending = [];
    const batch = lines.length === 1 ? lines[0]! : lines.join('');
    for (const d of this.destinations) d.write(batch);
  };
}

function flushOne(d: Destination): void {
  try {
    d.flush();
  } catch {
    // Not open yet: it writes what it holds once it is.
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
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    closeSync(openSync(file, 'a'));
  } catch (err) {
    throw new LogFileError(file, err as NodeJS.ErrnoException);
  }
}
