/**
 * Messages between the cluster primary and its gateway workers (WORKERS > 1), over node:cluster's IPC
 * channel.
 */

import type { ProcessReload } from '../gateway.js';
import type { TrafficInterval } from '../observability/traffic-history.js';

/** One worker's answer to a reload: its summary, or the error that refused it. */
export type WorkerReload = ProcessReload;

export type ToPrimary =
  /** The worker cannot serve, and no restart would change that (the port is taken): stop everything. */
  | { type: 'gateway:fatal'; message: string }
  /** The admin route of a worker asks for a reload of every worker. */
  | { type: 'gateway:reload-all'; id: number }
  | { type: 'gateway:reloaded'; id: number; result: WorkerReload }
  /** A worker's /metrics asks for every worker's metrics, summed. */
  | { type: 'gateway:metrics'; id: number }
  /** A worker's dashboard asks for every worker's traffic history. */
  | { type: 'gateway:traffic'; id: number }
  | { type: 'gateway:traffic-collected'; id: number; intervals: TrafficInterval[] };

export type ToWorker =
  | { type: 'gateway:reload'; id: number }
  | { type: 'gateway:reload-all-done'; id: number; results: WorkerReload[] }
  | { type: 'gateway:metrics-done'; id: number; text?: string; error?: string }
  | { type: 'gateway:traffic-collect'; id: number }
  | { type: 'gateway:traffic-done'; id: number; processes: TrafficInterval[][] };

/** Exit code of a worker that must not be restarted (EX_CONFIG of sysexits.h). */
export const EXIT_NOT_RESTARTABLE = 78;

export function isMessage<T extends { type: string }>(m: unknown): m is T {
  return (
    m !== null &&
    typeof m === 'object' &&
    typeof (m as { type?: unknown }).type === 'string' &&
    (m as { type: string }).type.startsWith('gateway:')
  );
}
