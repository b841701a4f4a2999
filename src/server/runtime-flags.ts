import v8 from 'node:v8';

/**
 * How far V8 lets the heap grow past what survived the last full collection before collecting again.
 * Its default lets a heap grow to four times its live size; a gateway's live heap is small (tens of
 * MB: code, endpoint state, requests in flight) and nearly all it allocates dies young, so 50% keeps
 * its resident memory close to what it uses, for a few more (cheap, small-heap) full collections.
 * `npm run bench` runs the floors it compares the gateway to with the same setting.
 */
export const HEAP_GROWING_PERCENT = 50;

/** Applies HEAP_GROWING_PERCENT unless the operator passed a heap-growing flag to node. */
export function tuneHeap(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent/.test(arg))) return;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
