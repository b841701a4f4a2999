import v8 from 'node:v8';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HEAP_GROWING_PERCENT, tuneHeap } from '../../src/server/runtime-flags.js';

describe('tuneHeap', () => {
  afterEach(() => vi.restoreAllMocks());

  it('sets V8 heap growth to the gateway’s setting', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    tuneHeap([]);
    expect(set).toHaveBeenCalledWith(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  });

  it('leaves it alone when the operator passed their own to node', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    tuneHeap(['--heap-growing-percent=100']);
    tuneHeap(['--heap_growing_percent=20']);
    expect(set).not.toHaveBeenCalled();
  });
});
