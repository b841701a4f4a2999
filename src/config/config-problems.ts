/** Turning configuration problems into plain words: which variable, which endpoint, which field. */
import type { z } from 'zod';

/** Start-up configuration problems, all of them at once, in plain words. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function describeIssue(
  issue: z.core.$ZodIssue,
  raw: Record<string, unknown>,
  fromEnv: Map<string, string>,
): string {
  const keyPath = issue.path.map(String);
  let where = formatPath(issue.path);
  if (keyPath[0] === 'endpoints' && keyPath.length >= 2) {
    const ep = (raw.endpoints as unknown[] | undefined)?.[Number(keyPath[1])];
    const label = endpointLabel(ep);
    if (label) where = `endpoints[${keyPath[1]}] (${label})${formatPath(issue.path.slice(2), true)}`;
  }
  for (let n = keyPath.length; n > 0; n--) {
    const envName = fromEnv.get(keyPath.slice(0, n).join('.'));
    if (envName !== undefined) {
      where = envName === 'ENDPOINTS' ? `ENDPOINTS: ${where}` : `${envName} (${where})`;
      break;
    }
  }
  let message = issue.message;
  if (issue.code === 'unrecognized_keys')
    message = `unknown setting(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) message = 'is required';
  return where === '' ? message : `${where}: ${message}`;
}

function endpointLabel(ep: unknown): string | undefined {
  if (ep === null || typeof ep !== 'object') return undefined;
  const { name, url } = ep as { name?: unknown; url?: unknown };
  if (typeof name === 'string' && name !== '') return name;
  if (typeof url === 'string' && url !== '') return withoutCredentials(url);
  return undefined;
}

/** A URL as it may be shown: user and password (if any) removed, also from a URL that does not parse. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/]*@/, '//');
  }
}

function formatPath(p: readonly PropertyKey[], continuation = false): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' && !continuation ? String(part) : `.${String(part)}`;
  }
  return out;
}

export function describeFileError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return 'file not found';
  if (e.code === 'EACCES') return 'permission denied';
  const hint = /flow|\$\{/i.test(e.message)
    ? ' (put values that use ${VAR} in quotes: port: "${PORT:-3000}")'
    : '';
  return `could not be parsed: ${e.message.split('\n')[0] ?? 'unknown error'}${hint}`;
}
