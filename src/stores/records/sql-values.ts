/** Values as both dialects store them: JSON fields as text, times as numbers (pg gives BIGINT as text). */

export function json(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function parsed<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function num(v: string | number | null): number | null {
  return v === null ? null : Number(v);
}
