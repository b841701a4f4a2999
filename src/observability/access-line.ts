import pino, { type DestinationStream, type Logger } from 'pino';
import { SERVICE } from './logger.js';

export type AccessLevel = 'debug' | 'info' | 'warn' | 'error';

export interface AccessLine {
  id: string;
  method: string;
  url: string;
  statusCode: number;
  responseTimeMs: number;
  /** Flat extra fields (model, endpoint, attempts…): strings, numbers and booleans. */
  fields: Readonly<Record<string, string | number | boolean | undefined>>;
  msg: string;
}

/**
 * Writes access lines in the same JSON shape and to the same destination as the logger's own lines
 * (`level`, ISO `time`, `service`, then the fields), but formatted directly with one JSON.stringify: an
 * access line is written per request and has a fixed shape, so it needs neither pino's generic
 * serialisation nor its redaction pass (it is built from an allow-list of fields, never from headers
 * or bodies). Whether a line is written follows the logger's level, which a reload may change.
 */
export function accessLineWriter(
  logger: Logger,
  now: () => number = Date.now,
): (level: AccessLevel, line: AccessLine) => void {
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
  if (!stream) throw new Error('the logger has no destination stream');
  const clock = new IsoClock(now);
  return (level, line) => {
    if (!logger.isLevelEnabled(level)) return;
    const text = JSON.stringify({
      level,
      time: clock.now(),
      service: SERVICE,
      req: { id: line.id, method: line.method, url: line.url },
      res: { statusCode: line.statusCode },
      responseTime: line.responseTimeMs,
      ...line.fields,
      msg: line.msg,
    });
    stream.write(`${text}\n`);
  };
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
