/** Turning configuration problems into plain words: which variable, which endpoint, which field. */
import type { z } from 'zod';

/** Start-up configuration problems, all of them at once, in plain words. */
export class ConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    /** Warnings found on the way (shown with the problems by `--check-config`). */
    readonly warnings: readonly string[] = [],
  ) {
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
  const message = plainMessage(issue);
  return where === '' ? message : `${where}: ${message}`;
}

/** zod's own wording ("Too small: expected number to be >=1") as a person would say it. */
export function plainMessage(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown setting(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    case 'invalid_type':
      if (input === undefined) return 'is required';
      if (!isZodDefault(issue.message)) return issue.message;
      if (issue.expected === 'int')
        return `must be a whole number (got ${typeof input === 'number' ? input : kindOf(input)})`;
      return `must be ${TYPE_NAMES[issue.expected] ?? issue.expected} (got ${kindOf(input)})`;
    case 'too_small': {
      if (!isZodDefault(issue.message)) return issue.message;
      const min = Number(issue.minimum);
      if (issue.origin === 'string')
        return min <= 1 ? 'must not be empty' : `must be at least ${min} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set')
        return min <= 1 ? 'must list at least one value' : `must list at least ${min} values`;
      return issue.inclusive === false
        ? `must be greater than ${min} (got ${String(input)})`
        : `must be at least ${min} (got ${String(input)})`;
    }
    case 'too_big': {
      if (!isZodDefault(issue.message)) return issue.message;
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${max} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set') return `must list at most ${max} values`;
      return issue.inclusive === false
        ? `must be less than ${max} (got ${String(input)})`
        : `must be at most ${max} (got ${String(input)})`;
    }
    case 'invalid_value':
      if (!isZodDefault(issue.message)) return issue.message;
      return `must be one of ${issue.values.map(String).join(', ')}${typeof input === 'string' ? ` (got '${clipValue(input)}')` : ''}`;
    case 'invalid_union':
      return isZodDefault(issue.message) ? `has the wrong type (got ${kindOf(input)})` : issue.message;
    default:
      return issue.message;
  }
}

/** zod's built-in messages; a message of ours (a custom check, a regex's) is kept as written. */
function isZodDefault(message: string): boolean {
  return /^(Invalid input|Invalid option|Too small|Too big|Invalid string|Invalid number)\b/.test(message);
}

const TYPE_NAMES: Record<string, string> = {
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of settings',
  record: 'a mapping',
};

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'text';
  if (typeof v === 'number') return `the number ${v}`;
  return typeof v;
}

function clipValue(v: string): string {
  return v.length > 40 ? `${v.slice(0, 40)}…` : v;
}

function endpointLabel(ep: unknown): string | undefined {
  if (ep === null || typeof ep !== 'object') return undefined;
  const { name, url } = ep as { name?: unknown; url?: unknown };
  if (typeof name === 'string' && name !== '') return name;
  if (typeof url === 'string' && url !== '') return withoutCredentials(url);
  return undefined;
}

/** A URL as it may be shown: user and password (if any) removed, also from a URL that does not parse. */
/** Query parameters that carry a credential (`?password=`, `?sslkey=`…). */
const SECRET_PARAM = /pass|secret|token|key|auth|credential/i;

/** A URL that may carry a password (a database's, Redis's) with the password replaced, for logs and views. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    const secretParams = [...parsed.searchParams.keys()].filter((k) => SECRET_PARAM.test(k));
    if (!parsed.password && secretParams.length === 0) return url;
    if (parsed.password) parsed.password = 'redacted';
    for (const k of secretParams) parsed.searchParams.set(k, 'redacted');
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1redacted@');
  }
}

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

export function formatPath(p: readonly PropertyKey[], continuation = false): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' && !continuation ? String(part) : `.${String(part)}`;
  }
  return out;
}

interface YamlErrorLike {
  code?: string;
  message: string;
  linePos?: Array<{ line: number; col: number }>;
  pos?: number[];
}

/** A file that could not be read or parsed, in words: the line, and for a repeated key its name. */
export function describeFileError(err: unknown, text?: string): string {
  const e = err as NodeJS.ErrnoException & YamlErrorLike;
  if (e.code === 'ENOENT') return 'file not found';
  if (e.code === 'EACCES') return 'permission denied';
  if (e.code === 'EISDIR') return 'is a directory, not a file';
  const at = e.linePos?.[0];
  // The parser's message ends in ":" followed by an excerpt of the file: keep the sentence only.
  let sentence = (e.message.split('\n')[0] ?? 'unknown error').replace(/ at line \d+, column \d+:?$/, '');
  const lineText = at && text !== undefined ? (text.split(/\r?\n/)[at.line - 1] ?? '') : '';
  if (e.code === 'DUPLICATE_KEY' && text !== undefined && e.pos?.[0] !== undefined) {
    const key = /^\s*(?:-\s+)?["']?([^"':]+)["']?\s*:/.exec(text.slice(e.pos[0]).split(/\r?\n/)[0] ?? '');
    sentence = key
      ? `the key '${key[1]?.trim()}' appears twice in the same section`
      : 'a key appears twice in the same section';
  } else if (e.code === 'TAB_AS_INDENT') {
    sentence = 'indentation must use spaces, not tabs';
  }
  const where = at ? `line ${at.line}${at.col > 1 ? `, column ${at.col}` : ''}: ` : '';
  const hint =
    /\$\{/.test(lineText) && !/["']\$\{/.test(lineText)
      ? ' (put values that use ${VAR} in quotes: port: "${PORT:-3000}")'
      : '';
  return `could not be parsed: ${where}${sentence}${hint}`;
}
