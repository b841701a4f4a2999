import { configOrigin, type SettingSource } from './load-config.js';
import type { GatewayConfig } from './types.js';

/** One setting as an operator sees it: its value (keys redacted) and where it came from. */
export interface SettingView extends SettingSource {
  value: unknown;
}

export type SettingsTree = { [key: string]: SettingsTree | SettingsTree[] | SettingView };

export interface ConfigView {
  object: 'config';
  files: { configFile: string | null; envFile: string | null };
  warnings: readonly string[];
  settings: SettingsTree;
}

import { withoutPassword } from './config-problems.js';

export const REDACTED = '[redacted]';

/** Keys: shown only as redacted, whatever asks. */
function isSecret(keyPath: ReadonlyArray<string | number>): boolean {
  const joined = keyPath.filter((k) => typeof k === 'string').join('.');
  return (
    joined === 'auth.apiKeys' ||
    joined === 'auth.adminKey' ||
    joined === 'endpoints.apiKey' ||
    joined === 'keys.claim.captcha.secret' ||
    joined === 'auth.jwt.secret'
  );
}

/** URLs that may carry a password (a database's, Redis's): shown with the password redacted. */
const URLS_WITH_CREDENTIALS = new Set(['database.url', 'redis.url']);

/**
 * The effective configuration, every value with its source (`default`, `env`, `file`), keys redacted:
 * what `GET /api/v1/config` answers and `--check-config` prints.
 */
export function describeConfig(config: GatewayConfig): ConfigView {
  const origin = configOrigin(config);
  const sourceOf = origin?.sourceOf ?? (() => ({ source: 'default' as const }));
  const { configFile: _file, ...settings } = config;
  const walk = (value: unknown, at: Array<string | number>): SettingsTree | SettingsTree[] | SettingView => {
    if (isPlainObject(value) && !isLeafRecord(at)) {
      const out: SettingsTree = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, [...at, k]);
      return out;
    }
    if (Array.isArray(value) && value.some((v) => isPlainObject(v)))
      return value.map((v, i) => walk(v, [...at, i]) as SettingsTree);
    if (typeof value === 'string' && URLS_WITH_CREDENTIALS.has(at.join('.')))
      return { value: withoutPassword(value), ...sourceOf(at) };
    const shown =
      isSecret(at) && value !== undefined
        ? Array.isArray(value)
          ? value.map(() => REDACTED)
          : REDACTED
        : (value ?? null);
    return { value: shown, ...sourceOf(at) };
  };
  return {
    object: 'config',
    files: { configFile: origin?.configFile ?? null, envFile: origin?.envFile ?? null },
    warnings: origin?.warnings ?? [],
    settings: walk(settings, []) as SettingsTree,
  };
}

/** Mappings that are values in their own right (an endpoint's model names), shown whole. */
function isLeafRecord(at: ReadonlyArray<string | number>): boolean {
  return at[0] === 'endpoints' && at[2] === 'modelNames';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The view as lines: `routing.maxAttempts = 3   (env MAX_ATTEMPTS)`. */
export function configLines(view: ConfigView): string[] {
  const rows: Array<[string, string, string]> = [];
  const walk = (node: unknown, at: string) => {
    if (isSettingView(node)) {
      rows.push([at, JSON.stringify(node.value), describeSource(node)]);
      return;
    }
    if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${at}[${i}]`));
    else if (isPlainObject(node))
      for (const [k, v] of Object.entries(node)) walk(v, at === '' ? k : `${at}.${k}`);
  };
  walk(view.settings, '');
  const width = Math.min(60, Math.max(...rows.map(([p, v]) => p.length + v.length + 3)));
  return rows.map(([p, v, s]) => `${`${p} = ${v}`.padEnd(width)}  (${s})`);
}

function isSettingView(node: unknown): node is SettingView {
  return isPlainObject(node) && 'value' in node && typeof node.source === 'string';
}

function describeSource(s: SettingSource): string {
  if (s.source === 'env') return s.file ? `env ${s.variable} in ${s.file}` : `env ${s.variable}`;
  if (s.source === 'file') return `file ${s.file}`;
  return 'default';
}
