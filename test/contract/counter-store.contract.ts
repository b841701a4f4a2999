import { describe, expect, it } from 'vitest';
import type { CounterCheck, CounterStore, PeerMessage } from '../../src/stores/counters/counter-store.js';
import {
  bucketMs,
  SLOT_LEASE_MS,
  type AdmitResult,
  type Ticket,
} from '../../src/stores/counters/counter-store.js';

/** The ticket of an admission that must have passed. */
function ticketOf(result: AdmitResult): Ticket {
  if (!result.ok) throw new Error(`expected an admission, got a refusal by check ${result.index}`);
  return result.ticket;
}

/** A store on a clock the test moves, with keys of its own (several suites may share one Redis). */
export type CounterFactory = (now: () => number) => Promise<{ store: CounterStore; prefix: string }>;

/**
 * One contract for every counter store (memory, Redis): the same calls must give the same answers.
 * Time is injected, so windows and leases are crossed without waiting.
 */
export function counterStoreContract(name: string, factory: CounterFactory): void {
  describe(`counter store contract: ${name}`, () => {
    async function setup() {
      let t = 1_000_000;
      const clock = { now: () => t, advance: (ms: number) => (t += ms) };
      const { store, prefix } = await factory(clock.now);
      return { store, clock, k: (key: string) => `${prefix}${key}` };
    }
    let n = 0;
    const id = () => `adm-${++n}-${Math.random().toString(36).slice(2)}`;
    /** A minute window's bucket: an admission leaves up to this much after its minute. */
    const B = bucketMs(60_000);

    it('count window: admits exactly the limit in any rolling window, then says when to retry', async () => {
      const { store, clock, k } = await setup();
      const check: CounterCheck = { kind: 'count', key: k('rpm'), limit: 3, windowMs: 60_000 };
      const results = [];
      for (let i = 0; i < 5; i++) {
        results.push(await store.admit(id(), [check]));
        clock.advance(1_000);
      }
      expect(results.map((r) => r.ok)).toEqual([true, true, true, false, false]);
      const ok = results[2]!;
      expect(ok.ok && ok.states[0]!.remaining).toBe(0);
      const refused = results[3]!;
      // The first admission (at t0, the start of a bucket) leaves the window at the end of its bucket
      // plus 60 s; this refusal came at t0 + 3 s.
      expect(B).toBe(100);
      expect(!refused.ok && refused.retryAfterMs).toBe(57_000 + B);
      expect(!refused.ok && refused.index).toBe(0);
      clock.advance(55_500); // t0 + 60.5 s: the first admission (only) has left
      expect((await store.admit(id(), [check])).ok).toBe(true);
      expect((await store.admit(id(), [check])).ok).toBe(false);
      await store.close();
    });

    it('all or nothing: a refusal by one check counts against no other', async () => {
      const { store, k } = await setup();
      const wide: CounterCheck = { kind: 'count', key: k('wide'), limit: 100, windowMs: 60_000 };
      const narrow: CounterCheck = { kind: 'count', key: k('narrow'), limit: 1, windowMs: 60_000 };
      const slots: CounterCheck = { kind: 'slots', key: k('slots'), limit: 10 };
      expect((await store.admit(id(), [wide, narrow, slots])).ok).toBe(true);
      const refused = await store.admit(id(), [wide, narrow, slots]);
      expect(refused.ok).toBe(false);
      expect(!refused.ok && refused.index).toBe(1);
      const probe = await store.admit(id(), [wide, slots]);
      expect(probe.ok && probe.states.map((s) => s.remaining)).toEqual([98, 8]);
      await store.close();
    });

    it('states: an admission resets its windows to the full window; a refusal tells when the newest leaves', async () => {
      const { store, clock, k } = await setup();
      const rpm: CounterCheck = { kind: 'count', key: k('st-rpm'), limit: 2, windowMs: 60_000 };
      const tpm: CounterCheck = { kind: 'sum', key: k('st-tpm'), limit: 1_000, windowMs: 60_000 };
      const par: CounterCheck = { kind: 'slots', key: k('st-par'), limit: 5 };
      // 300 under the sum window; 1 under the count window whatever the amount.
      const first = await store.admit(id(), [rpm, tpm, par], 300);
      expect(first.ok && first.states).toEqual([
        { remaining: 1, resetMs: 60_000 + B },
        { remaining: 700, resetMs: 60_000 + B },
        { remaining: 4, resetMs: 0 },
      ]);
      clock.advance(5_000);
      expect((await store.admit(id(), [rpm, tpm, par], 300)).ok).toBe(true);
      clock.advance(2_000);
      // rpm refuses; every check's state is as it stands (the newest admission came 2 s ago).
      const refused = await store.admit(id(), [rpm, tpm, par], 300);
      expect(refused.ok).toBe(false);
      expect(refused.states).toEqual([
        { remaining: 0, resetMs: 58_000 + B },
        { remaining: 400, resetMs: 58_000 + B },
        { remaining: 3, resetMs: 0 },
      ]);
      await store.close();
    });

    it('sum window: reserves amounts, corrects them, refuses what does not fit', async () => {
      const { store, clock, k } = await setup();
      const tpm: CounterCheck = { kind: 'sum', key: k('tpm'), limit: 1_000, windowMs: 60_000 };
      const first = await store.admit(id(), [tpm], 600);
      expect(first.ok && first.states[0]!.remaining).toBe(400);
      clock.advance(10_000);
      expect((await store.admit(id(), [tpm], 500)).ok).toBe(false);
      // The real usage was smaller than the reservation.
      await store.correct(ticketOf(first), [k('tpm')], 100);
      const second = await store.admit(id(), [tpm], 500);
      expect(second.ok && second.states[0]!.remaining).toBe(400);
      const refused = await store.admit(id(), [tpm], 450);
      // Fits once the 100 of t0 leave (its bucket's end + 60 s), i.e. 50 s and a bucket after now.
      expect(!refused.ok && refused.retryAfterMs).toBe(50_000 + B);
      clock.advance(50_000);
      expect((await store.admit(id(), [tpm], 450)).ok).toBe(false);
      clock.advance(B);
      expect((await store.admit(id(), [tpm], 450)).ok).toBe(true);
      await store.close();
    });

    it('sum window: admissions sharing one array of checks each weigh their own amount', async () => {
      const { store, k } = await setup();
      const checks: CounterCheck[] = [
        { kind: 'count', key: k('shared-rpm'), limit: 10, windowMs: 60_000 },
        { kind: 'sum', key: k('shared-tpm'), limit: 1_000, windowMs: 60_000 },
      ];
      // In one turn (one script call for the Redis store), then once more alone.
      const batch = await Promise.all([100, 250, 0, 700].map((amount) => store.admit(id(), checks, amount)));
      expect(batch.map((r) => r.ok)).toEqual([true, true, true, false]);
      expect(batch.map((r) => r.states.map((s) => s.remaining))).toEqual([
        [9, 900],
        [8, 650],
        [7, 650],
        [7, 650],
      ]);
      // Taken back from its own amount (250), not another admission's.
      await store.correct(ticketOf(batch[1]!), [k('shared-tpm')], 50);
      const after = await store.admit(id(), checks, 1);
      expect(after.ok && after.states.map((s) => s.remaining)).toEqual([6, 849]);
      await store.close();
    });

    it('count window: a released admission is taken back as if it had never been', async () => {
      const { store, k } = await setup();
      const check: CounterCheck = { kind: 'count', key: k('claims'), limit: 1, windowMs: 86_400_000 };
      await store.release(ticketOf(await store.admit(id(), [check])), [k('claims')]);
      expect((await store.admit(id(), [check])).ok).toBe(true);
      expect((await store.admit(id(), [check])).ok).toBe(false);
      await store.close();
    });

    it('sum window: an amount above the limit can never pass', async () => {
      const { store, k } = await setup();
      const refused = await store.admit(
        id(),
        [{ kind: 'sum', key: k('big'), limit: 10, windowMs: 60_000 }],
        11,
      );
      expect(!refused.ok && refused.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
      await store.close();
    });

    it('slots: at most the limit in flight; released slots and expired leases come back', async () => {
      const { store, clock, k } = await setup();
      const par: CounterCheck = { kind: 'slots', key: k('par'), limit: 2 };
      const a = ticketOf(await store.admit(id(), [par]));
      expect((await store.admit(id(), [par])).ok).toBe(true);
      expect((await store.admit(id(), [par])).ok).toBe(false);
      await store.release(a, [k('par')]);
      const c = ticketOf(await store.admit(id(), [par]));
      // c is renewed (a live replica); b's holder dies: c stays, b's slot expires.
      clock.advance(SLOT_LEASE_MS - 1_000);
      await store.renew([{ ticket: c, slotKeys: [k('par')] }]);
      clock.advance(2_000);
      const d = id();
      expect((await store.admit(d, [par])).ok).toBe(true);
      expect((await store.admit(id(), [par])).ok).toBe(false);
      await store.close();
    });

    it('count window: admissions in one turn are counted in order, exactly, and leave with their bucket', async () => {
      const { store, clock, k } = await setup();
      const check: CounterCheck = { kind: 'count', key: k('burst'), limit: 20, windowMs: 60_000 };
      // 60 at once: in one batch for the Redis store (one script call), each checked in turn.
      const burst = await Promise.all(Array.from({ length: 60 }, () => store.admit(id(), [check])));
      expect(burst.filter((r) => r.ok)).toHaveLength(20);
      expect(burst.slice(0, 20).every((r) => r.ok)).toBe(true);
      const remaining = burst.slice(0, 20).map((r) => r.states[0]!.remaining);
      expect(remaining).toEqual(Array.from({ length: 20 }, (_, i) => 19 - i));
      // Half a bucket later, another 10 (a new bucket once the clock crosses its edge).
      clock.advance(B * 1.5);
      expect((await store.admit(id(), [check])).ok).toBe(false);
      // The first 20 leave together, at their bucket's end plus the window; then 20 pass again.
      clock.advance(60_000 - B * 1.5 + B - 1);
      expect((await store.admit(id(), [check])).ok).toBe(false);
      clock.advance(1);
      const again = await Promise.all(Array.from({ length: 21 }, () => store.admit(id(), [check])));
      expect(again.filter((r) => r.ok)).toHaveLength(20);
      await store.close();
    });

    it('sum window: corrections and releases touch only their own bucket, and not once it has left', async () => {
      const { store, clock, k } = await setup();
      const tpm: CounterCheck = { kind: 'sum', key: k('tpm-b'), limit: 1_000, windowMs: 60_000 };
      const early = ticketOf(await store.admit(id(), [tpm], 300));
      clock.advance(30_000);
      const late = ticketOf(await store.admit(id(), [tpm], 300));
      await store.correct(late, [k('tpm-b')], 50);
      // Corrected twice: the second correction is from the first's amount, not the reservation's.
      await store.correct(late, [k('tpm-b')], 80);
      let probe = await store.admit(id(), [tpm], 0);
      expect(probe.ok && probe.states[0]!.remaining).toBe(1_000 - 300 - 80);
      // The early admission leaves; its correction afterwards must not take anything from the others.
      clock.advance(30_000 + B);
      await store.correct(early, [k('tpm-b')], 0);
      probe = await store.admit(id(), [tpm], 0);
      expect(probe.ok && probe.states[0]!.remaining).toBe(1_000 - 80);
      await store.release(late, [k('tpm-b')]);
      probe = await store.admit(id(), [tpm], 0);
      expect(probe.ok && probe.states[0]!.remaining).toBe(1_000);
      // After a silence longer than the window, the window starts empty.
      await store.admit(id(), [tpm], 400);
      clock.advance(10 * 60_000);
      probe = await store.admit(id(), [tpm], 0);
      expect(probe.ok && probe.states[0]).toEqual({ remaining: 1_000, resetMs: 60_000 + B });
      await store.close();
    });

    it('budget: admits while spent is under the limit, then until the period ends', async () => {
      const { store, clock, k } = await setup();
      const budget: CounterCheck = { kind: 'budget', key: k('budget:day'), limit: 1 };
      expect((await store.admit(id(), [budget])).ok).toBe(true);
      await store.spend([{ key: k('budget:day'), ttlMs: 3_600_000 }], 0.6);
      // Admitted with what is left of the budget and when its period ends, beside a window and a slot.
      const rpm: CounterCheck = { kind: 'count', key: k('budget-rpm'), limit: 5, windowMs: 60_000 };
      const par: CounterCheck = { kind: 'slots', key: k('budget-par'), limit: 5 };
      const admitted = await store.admit(id(), [budget, rpm, par]);
      expect(admitted.ok && admitted.states[0]!.remaining).toBeCloseTo(0.4);
      expect(admitted.ok && admitted.states[0]!.resetMs).toBeGreaterThan(3_500_000);
      expect(admitted.ok && admitted.states[0]!.resetMs).toBeLessThanOrEqual(3_600_000);
      expect(admitted.ok && admitted.states.slice(1)).toEqual([
        { remaining: 4, resetMs: 60_000 + B },
        { remaining: 4, resetMs: 0 },
      ]);
      await store.spend([{ key: k('budget:day'), ttlMs: 3_600_000 }], 0.5);
      expect(await store.spent(k('budget:day'))).toBeCloseTo(1.1);
      const refused = await store.admit(id(), [budget]);
      expect(refused.ok).toBe(false);
      expect(!refused.ok && refused.retryAfterMs).toBeGreaterThan(3_500_000);
      expect(!refused.ok && refused.retryAfterMs).toBeLessThanOrEqual(3_600_000);
      await store.close();
      void clock;
    });

    it('publishes messages to every subscriber', async () => {
      const { store } = await setup();
      let heard!: (m: PeerMessage) => void;
      const got = new Promise<PeerMessage>((resolve) => (heard = resolve));
      await store.onMessage(heard);
      await store.publish({ type: 'test', n: 1 });
      expect(await got).toEqual({ type: 'test', n: 1 });
      await store.close();
    });
  });
}
