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

/** Bytes a destination gathers before it writes, so that a busy gateway makes one write per batch of lines. */
const BATCH_BYTES = 4096;
/** What a quiet gateway has gathered is written within this time. */
const FLUSH_INTERVAL_MS = 250;

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: SERVICE },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (options.stream) return pino(base, options.stream);
  // Asynchronous, batched destinations: logging must never block the event loop on a slow terminal or
  // disk, nor cost a write per line.
  const destinations = [pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES })];
  if (options.file) {
    assertWritable(options.file.path);
    destinations.push(
      pino.destination({ dest: options.file.path, sync: false, mkdir: true, minLength: BATCH_BYTES }),
    );
  }
  const fanOut = new FanOut(destinations);
  // A disk that fills up later must not take the gateway down: report on stderr and carry on.
  for (const d of destinations)
    d.on('error', (err: Error) => process.stderr.write(`log write failed: ${err.message}\n`));
  setInterval(() => fanOut.flushIfWritten(), FLUSH_INTERVAL_MS).unref();
  // Whatever is still buffered is written out when the process exits (after SIGTERM, on a fatal error).
  process.once('exit', () => {
    for (const d of destinations) {
      try {
        d.flushSync();
      } catch {
        // A destination that is not open yet has nothing to flush.
      }
    }
  });
  return pino(base, fanOut);
}

type Destination = ReturnType<typeof pino.destination>;

/** Every line to every destination (stdout, and the log file when FILE_LOGGING is on). */
class FanOut implements DestinationStream {
  private written = false;

  constructor(private readonly destinations: readonly Destination[]) {
    // Lines written before a destination is open are written as soon as it is.
    for (const d of destinations) d.once('ready', () => flushOne(d));
  }

  write(line: string): void {
    this.written = true;
    for (const d of this.destinations) d.write(line);
  }

  flushIfWritten(): void {
    if (this.written) this.flush();
  }

  /** Starts writing whatever is gathered (logger.flush() calls this). */
  flush(): void {
    this.written = false;
    for (const d of this.destinations) flushOne(d);
  }
}

function flushOne(d: Destination): void {
  try {
    d.flush();
  } catch {
    // Not open yet: its lines go out when it is ('ready').
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
