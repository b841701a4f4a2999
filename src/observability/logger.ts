import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

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
    base: { service: 'akash-llm-gateway' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (options.stream) return pino(base, options.stream);
  // Asynchronous destinations: logging must never block the event loop on a slow terminal or disk.
  const stdout = pino.destination({ dest: 1, sync: false });
  const destinations = [stdout];
  let logger: Logger;
  if (options.file) {
    assertWritable(options.file.path);
    const file = pino.destination({ dest: options.file.path, sync: false, mkdir: true });
    destinations.push(file);
    logger = pino(
      base,
      pino.multistream([
        { stream: stdout, level: 'trace' },
        { stream: file, level: 'trace' },
      ]),
    );
  } else {
    logger = pino(base, stdout);
  }
  // A disk that fills up later must not take the gateway down: report on stderr and carry on.
  for (const d of destinations)
    d.on('error', (err: Error) => process.stderr.write(`log write failed: ${err.message}\n`));
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
  return logger;
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
