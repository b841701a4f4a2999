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
 * (`level`, ISO `time`, `service`, then the fields), formatted directly into one string: an access line
 * is written per request and has a fixed shape, so it needs neither pino's generic serialisation nor its
 * redaction pass (it is built from an allow-list of fields, never from headers or bodies), nor an
 * intermediate object for JSON.stringify. Whether a line is written follows the logger's level, which a
 * reload may change.
 */
export function accessLineWriter(
  logger: Logger,
  now: () => number = Date.now,
): (level: AccessLevel, line: AccessLine) => void {
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
  if (!stream) throw new Error('the logger has no destination stream');
  const clock = new IsoClock(now);
  const service = jsonString(SERVICE);
  return (level, line) => {
    if (!logger.isLevelEnabled(level)) return;
    let text = `{"level":"${level}","time":"${clock.now()}","service":${service},"req":{"id":${jsonString(line.id)},"method":${jsonString(line.method)},"url":${jsonString(line.url)}},"res":{"statusCode":${line.statusCode}},"responseTime":${jsonNumber(line.responseTimeMs)}`;
    const { fields } = line;
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      text += `,${jsonString(key)}:${typeof value === 'string' ? jsonString(value) : typeof value === 'number' ? jsonNumber(value) : value}`;
    }
    stream.write(`${text},"msg":${jsonString(line.msg)}}\n`);
  };
}

/** Strings of plain printable ASCII without quote or backslash (ids, paths, names) need no escaping. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** As JSON.stringify writes numbers: NaN and the infinities as null. */
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
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
