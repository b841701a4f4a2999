import { mkdirSync } from 'node:fs';
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
    mkdirSync(path.dirname(path.resolve(options.file.path)), { recursive: true });
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
