import type { Timeouts } from '../../config/types.js';

/**
 * A request's timeout headers may only make its limits stricter than the operator's: shorter waits, a
 * higher minimum throughput. A client cannot keep an endpoint busy longer than the configuration allows.
 */
export function tighten(base: Timeouts, override: Readonly<Partial<Timeouts>>): Timeouts {
  if (
    override.firstByteMs === undefined &&
    override.idleMs === undefined &&
    override.totalMs === undefined &&
    override.minBytesPerSecond === undefined
  )
    return base;
  return {
    ...base,
    firstByteMs: Math.min(base.firstByteMs, override.firstByteMs ?? Infinity),
    idleMs: Math.min(base.idleMs, override.idleMs ?? Infinity),
    totalMs: Math.min(base.totalMs, override.totalMs ?? Infinity),
    minBytesPerSecond: Math.max(base.minBytesPerSecond, override.minBytesPerSecond ?? 0),
  };
}
