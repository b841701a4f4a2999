import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { FakeUpstream, type Behavior, type FakeUpstreamOptions } from './fake-upstream.js';
import { startGateway, type StartOptions, type TestGateway } from './start-gateway.js';

/** What an integration test starts; everything it starts is stopped after the test. */
export interface TestBed {
  /** Starts a fake upstream (a name or full options), queues `script` on it and stops it after the test. */
  upstream(nameOrOptions?: string | FakeUpstreamOptions, ...script: Behavior[]): Promise<FakeUpstream>;
  /** Starts a gateway (see startGateway) and closes it after the test. */
  gateway(options: StartOptions): Promise<TestGateway>;
  /** The gateway this test started last; throws if it has started none. */
  readonly gw: TestGateway;
  /** A fresh temporary directory, removed after the test. */
  tempDir(prefix: string): Promise<string>;
  /** Runs `fn` after the test, once gateways and upstreams are stopped; the last registered runs first. */
  onCleanup(fn: () => unknown): void;
}

/**
 * Registers an `afterEach` (in the calling scope) that closes the test's gateways first, then stops its
 * upstreams, then runs the other cleanups, and returns the bed to start them from. Every cleanup runs
 * even if an earlier one fails; the failures are reported afterwards.
 */
export function useTestBed(): TestBed {
  let gateways: TestGateway[] = [];
  let upstreams: FakeUpstream[] = [];
  let cleanups: Array<() => unknown> = [];

  afterEach(async () => {
    const [gws, ups, fns] = [gateways, upstreams, cleanups];
    gateways = [];
    upstreams = [];
    cleanups = [];
    const errors: unknown[] = [];
    const settle = async (tasks: Array<Promise<unknown>>) => {
      for (const r of await Promise.allSettled(tasks)) if (r.status === 'rejected') errors.push(r.reason);
    };
    await settle(gws.map((g) => g.close()));
    await settle(ups.map((u) => u.stop()));
    for (const fn of fns.reverse()) await settle([Promise.resolve().then(fn)]);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'test bed cleanup failed');
  });

  return {
    async upstream(nameOrOptions = {}, ...script) {
      const options = typeof nameOrOptions === 'string' ? { name: nameOrOptions } : nameOrOptions;
      const upstream = await FakeUpstream.start(options);
      upstreams.push(upstream);
      return upstream.script(...script);
    },
    async gateway(options) {
      const gw = await startGateway(options);
      gateways.push(gw);
      return gw;
    },
    get gw() {
      const gw = gateways.at(-1);
      if (!gw) throw new Error('this test has started no gateway');
      return gw;
    },
    async tempDir(prefix) {
      const dir = await mkdtemp(path.join(tmpdir(), prefix));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      return dir;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
  };
}
