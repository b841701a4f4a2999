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
 * (`level`, ISO `time`, `service`, then the fields), but formatted directly: an access line is written
 * per request and has a fixed shape, so it needs neither pino's generic serialisation nor its redaction
 * pass (it is built from an allow-list of fields, never from headers or bodies). Whether a line is
 * written follows the logger's level, which a configuration reload may change.
 */
export function accessLineWriter(logger: Logger): (level: AccessLevel, line: AccessLine) => void {
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
  if (!stream) throw new Error('the logger has no destination stream');
  return (level, line) => {
    if (!logger.isLevelEnabled(level)) return;
    let out = `{"level":"${level}","time":"${new Date().toISOString()}","service":"${SERVICE}","req":{"id":${JSON.stringify(line.id)},"method":${JSON.stringify(line.method)},"url":${JSON.stringify(line.url)}},"res":{"statusCode":${line.statusCode}},"responseTime":${json(line.responseTimeMs)}`;
    const { fields } = line;
    for (const key in fields) {
      const value = fields[key];
      if (value !== undefined) out += `,${JSON.stringify(key)}:${json(value)}`;
    }
    stream.write(`${out},"msg":${JSON.stringify(line.msg)}}\n`);
  };
}

function json(value: string | number | boolean): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  return value ? 'true' : 'false';
}
