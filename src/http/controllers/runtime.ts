import type { RequestHandler } from 'express';

/**
 * `GET /api/v1/runtime` (admin key): process facts for operators and soak tests: memory, the event
 * loop's active resources by type (sockets, timers…), uptime.
 */
export function runtime(inFlight: () => number, transcriptBytes: () => number): RequestHandler {
  return (_req, res) => {
    const resources: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
    const memory = process.memoryUsage();
    res.setHeader('cache-control', 'no-store');
    res.json({
      object: 'runtime',
      pid: process.pid,
      uptimeS: Math.round(process.uptime()),
      inFlight: inFlight(),
      /** Kept by open streams for continuation (bounded by CONTINUATION_BUDGET_BYTES). */
      continuationMb: Math.round((transcriptBytes() / 1048576) * 10) / 10,
      memoryMb: Object.fromEntries(
        Object.entries(memory).map(([k, v]) => [k, Math.round((v / 1048576) * 10) / 10]),
      ),
      activeResources: resources,
    });
  };
}
