/**
 * Values as both dialects store them (JSON fields as text, times as numbers: pg gives BIGINT as text),
 * and the change counter every change moves.
 */
import type { SqlRunner } from './sql-driver.js';

export function json(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function parsed<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function num(v: string | number | null): number | null {
  return v === null ? null : Number(v);
}

/** Moves the change counter every replica polls (in the transaction of the change). */
export async function bump(tx: SqlRunner): Promise<void> {
  await tx.run('UPDATE record_changes SET seq = seq + 1 WHERE id = 1');
}
