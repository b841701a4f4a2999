import type { EjectionConfig } from '../../config/types.js';
import type { LineLog } from '../../observability/logger.js';
import type { FailureKind } from '../core/outcomes.js';

/**
 * Passive health of one endpoint, fed by the outcome of every attempt. Outlier ejection follows the
 * Envoy model: after `consecutiveFailures` failures in a row the endpoint is ejected for
 * base * 2^(ejections-1) (capped), then a single trial request is let through (half-open); its success
 * restores the endpoint, its failure ejects it again for longer. A 429 is not a failure: the endpoint
 * only cools down for its Retry-After.
 */
export type HealthState = 'healthy' | 'ejected' | 'half-open' | 'cooling-down';

export interface LastError {
  kind: FailureKind | 'rate-limited' | 'model-missing';
  message: string;
  at: number;
}

const EWMA_ALPHA = 0.3;
/** Outcomes remembered for the error ratio. */
const OUTCOME_WINDOW = 20;

export class EndpointHealth {
  inFlight = 0;
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;
  cooldownUntil = 0;
  trialInFlight = false;
  ewmaLatencyMs: number | undefined;
  ewmaTtfbMs: number | undefined;
  requests = 0;
  failures = 0;
  lastError: LastError | undefined;
  /** Last OUTCOME_WINDOW request outcomes, true for a failure (ring buffer). */
  private readonly outcomes: boolean[] = [];
  private outcomeIndex = 0;
  /** What the current ejection came from: failed requests need a successful trial request to end it. */
  /** What ejected it: its requests, its probes, or another replica (shared through Redis). */
  ejectedBy: 'requests' | 'probes' | 'peer' | undefined;
  /** Set by active probes: the endpoint does not answer GET /v1/models. */
  probeFailing = false;
  lastProbeAt: number | undefined;
  /** The last time the endpoint was seen working: a successful request or a passing probe. */
  lastSuccessAt: number | undefined;

  /** Share of failures among the last OUTCOME_WINDOW requests (0 when none). */
  get errorRatio(): number {
    if (this.outcomes.length === 0) return 0;
    return this.outcomes.filter(Boolean).length / this.outcomes.length;
  }

  get windowSize(): number {
    return this.outcomes.length;
  }

  recordOutcome(failed: boolean): void {
    if (this.outcomes.length < OUTCOME_WINDOW) this.outcomes.push(failed);
    else this.outcomes[this.outcomeIndex] = failed;
    this.outcomeIndex = (this.outcomeIndex + 1) % OUTCOME_WINDOW;
  }

  resetOutcomes(): void {
    this.outcomes.length = 0;
    this.outcomeIndex = 0;
  }

  /** Whether the endpoint has been ejected and not yet proven healthy again. */
  get isEjected(): boolean {
    return this.ejectedUntil > 0;
  }

  state(now: number): HealthState {
    if (this.ejectedUntil > now) return 'ejected';
    if (this.isEjected) return 'half-open';
    if (this.cooldownUntil > now) return 'cooling-down';
    return 'healthy';
  }

  /**
   * When the endpoint may take a request again: `now` or earlier if it can right now. A half-open
   * endpoint takes one trial at a time.
   */
  availableAt(now: number, maxConcurrent: number | undefined): number {
    let at = Math.max(this.ejectedUntil, this.cooldownUntil);
    if (at <= now && this.isEjected && this.trialInFlight) at = now + 1;
    if (at <= now && maxConcurrent !== undefined && this.inFlight >= maxConcurrent) at = now + 1;
    return at;
  }
}

export interface HealthMonitorOptions {
  ejection: EjectionConfig;
  now: () => number;
  /** Told when an endpoint is ejected or restored (for the log). */
  onChange?: (event: HealthChange) => void;
  /** Told of every change other replicas should apply too (ejections, restorations, cooldowns). */
  share?: (event: SharedHealthChange) => void;
}

/**
 * A change of an endpoint's state, as replicas tell each other (through Redis): durations, not times,
 * so that clocks that disagree still agree on how long.
 */
export interface SharedHealthChange {
  endpoint: string;
  change: 'ejected' | 'restored' | 'cooling-down';
  /** How long from now the endpoint stays out (ejected, cooling down). */
  forMs?: number;
  reason?: string | undefined;
}

export interface HealthChange {
  endpoint: string;
  change: 'ejected' | 'restored';
  untilMs?: number;
  reason?: string;
  /** The logger of the request whose attempt caused the change (a probe's has none). */
  log?: LineLog | undefined;
}

/** One attempt on one endpoint; settled exactly once. Holds the health object itself, so an endpoint removed by a reload while the attempt runs is still accounted for. */
export interface AttemptTicket {
  readonly health: EndpointHealth;
  readonly isTrial: boolean;
  settled: boolean;
  /** The logger of the request the attempt works for. */
  readonly log: LineLog | undefined;
}

/** Keeps the health of every endpoint and decides ejections, with a cap on how many may be out at once. */
export class HealthMonitor {
  private readonly byName = new Map<string, EndpointHealth>();

  constructor(private readonly options: HealthMonitorOptions) {}

  get(name: string): EndpointHealth {
    let h = this.byName.get(name);
    if (!h) {
      h = new EndpointHealth();
      this.byName.set(name, h);
    }
    return h;
  }

  now(): number {
    return this.options.now();
  }

  begin(name: string, log?: LineLog): AttemptTicket {
    const h = this.get(name);
    h.inFlight++;
    h.requests++;
    const isTrial = h.isEjected && h.ejectedUntil <= this.options.now();
    if (isTrial) h.trialInFlight = true;
    return { health: h, isTrial, settled: false, log };
  }

  /** The attempt ended without a verdict on the endpoint (client went away, request was the problem). */
  release(ticket: AttemptTicket): void {
    if (ticket.settled) return;
    ticket.settled = true;
    const h = ticket.health;
    h.inFlight = Math.max(0, h.inFlight - 1);
    if (ticket.isTrial) h.trialInFlight = false;
  }

  success(ticket: AttemptTicket, timing: { latencyMs?: number; ttfbMs?: number } = {}): void {
    if (ticket.settled) return;
    this.release(ticket);
    const h = ticket.health;
    h.recordOutcome(false);
    h.consecutiveFailures = 0;
    h.lastSuccessAt = this.options.now();
    if (h.isEjected) {
      this.options.onChange?.({ endpoint: this.nameOf(h), change: 'restored', log: ticket.log });
      this.options.share?.({ endpoint: this.nameOf(h), change: 'restored' });
    }
    h.ejections = 0;
    h.ejectedUntil = 0;
    h.ejectedBy = undefined;
    if (timing.latencyMs !== undefined) h.ewmaLatencyMs = ewma(h.ewmaLatencyMs, timing.latencyMs);
    if (timing.ttfbMs !== undefined) h.ewmaTtfbMs = ewma(h.ewmaTtfbMs, timing.ttfbMs);
  }

  failure(ticket: AttemptTicket, kind: FailureKind, message: string): void {
    if (ticket.settled) return;
    this.release(ticket);
    const h = ticket.health;
    h.failures++;
    h.recordOutcome(true);
    this.registerFailure(h, kind, message, ticket.isTrial, 'requests', ticket.log);
  }

  /**
   * An active probe (GET /v1/models) failed: counts towards ejection like a failed request, so a dead
   * endpoint is taken out before clients pay for it.
   */
  probeFailed(h: EndpointHealth, kind: FailureKind, message: string): void {
    h.probeFailing = true;
    h.lastProbeAt = this.options.now();
    if (h.isEjected) {
      h.lastError = { kind, message, at: this.options.now() };
      return;
    }
    this.registerFailure(h, kind, message, false, 'probes');
  }

  /**
   * An active probe succeeded. An endpoint ejected because its probes failed becomes half-open at once:
   * the next request is its single trial, so recovery does not wait for the ejection to run out. One
   * ejected because its requests failed (streams that keep breaking, say) answers probes all the same:
   * it waits out its back-off, and only a successful trial request restores it.
   */
  probeSucceeded(h: EndpointHealth): void {
    const now = this.options.now();
    h.probeFailing = false;
    h.lastProbeAt = now;
    h.lastSuccessAt = now;
    if (h.ejectedUntil > now && (h.ejectedBy === 'probes' || h.ejectedBy === 'peer')) h.ejectedUntil = now;
  }

  private registerFailure(
    h: EndpointHealth,
    kind: FailureKind,
    message: string,
    trialFailed: boolean,
    by: 'requests' | 'probes',
    log?: LineLog,
  ): void {
    const now = this.options.now();
    h.consecutiveFailures++;
    h.lastError = { kind, message, at: now };
    const { consecutiveFailures, failureRatio, minRequests } = this.options.ejection;
    const outlier =
      h.consecutiveFailures >= consecutiveFailures ||
      (h.windowSize >= minRequests && h.errorRatio >= failureRatio);
    if (!trialFailed && (h.isEjected || !outlier)) return;
    if (!trialFailed && !this.mayEject(h)) return;
    h.ejectedBy = by;
    this.eject(h, now, log);
  }

  private eject(h: EndpointHealth, now: number, log: LineLog | undefined): void {
    const { baseEjectionMs, maxEjectionMs } = this.options.ejection;
    h.ejections++;
    h.ejectedUntil = now + Math.min(maxEjectionMs, baseEjectionMs * 2 ** (h.ejections - 1));
    h.resetOutcomes();
    this.options.onChange?.({
      endpoint: this.nameOf(h),
      change: 'ejected',
      untilMs: h.ejectedUntil - now,
      reason: h.lastError?.message,
      log,
    });
    this.options.share?.({
      endpoint: this.nameOf(h),
      change: 'ejected',
      forMs: h.ejectedUntil - now,
      reason: h.lastError?.message,
    });
  }

  /**
   * Applies what another replica found, without telling anyone again. An ejection counts as one by
   * probes (a probe of this replica that succeeds lets a trial request through at once) and keeps to
   * the cap on ejected endpoints; a restoration ends only an ejection that came from a peer.
   * Returns whether anything changed.
   */
  applyShared(event: SharedHealthChange): boolean {
    const h = this.byName.get(event.endpoint);
    if (!h) return false;
    const now = this.options.now();
    const forMs = Math.max(0, Math.min(event.forMs ?? 0, this.options.ejection.maxEjectionMs));
    if (event.change === 'cooling-down') {
      if (h.cooldownUntil >= now + forMs) return false;
      h.cooldownUntil = now + forMs;
      h.lastError = {
        kind: 'rate-limited',
        message: `rate limited (seen by another replica) for ${forMs} ms`,
        at: now,
      };
      return true;
    }
    if (event.change === 'ejected') {
      if (h.ejectedUntil >= now + forMs || !this.mayEject(h)) return false;
      h.ejectedUntil = now + forMs;
      h.ejectedBy = 'peer';
      h.lastError = {
        kind: 'server-error',
        message: `ejected by another replica: ${event.reason ?? 'failures'}`,
        at: now,
      };
      return true;
    }
    if (h.ejectedBy !== 'peer' || h.ejectedUntil <= now) return false;
    h.ejectedUntil = now;
    h.ejectedBy = undefined;
    return true;
  }

  private nameOf(h: EndpointHealth): string {
    for (const [name, candidate] of this.byName) if (candidate === h) return name;
    return '(removed endpoint)';
  }

  /** The endpoint was removed from the configuration. */
  forget(name: string): void {
    this.byName.delete(name);
  }

  /** New ejection settings from a configuration reload. */
  setEjection(ejection: EjectionConfig): void {
    this.options.ejection = ejection;
  }

  /** A 429: not an error, the endpoint just cools down for as long as it asked. */
  rateLimited(ticket: AttemptTicket, retryAfterMs: number): void {
    if (ticket.settled) return;
    this.release(ticket);
    const now = this.options.now();
    const h = ticket.health;
    h.cooldownUntil = Math.max(h.cooldownUntil, now + retryAfterMs);
    h.lastError = { kind: 'rate-limited', message: `rate limited for ${retryAfterMs} ms`, at: now };
    this.options.share?.({ endpoint: this.nameOf(h), change: 'cooling-down', forMs: retryAfterMs });
  }

  noteModelMissing(ticket: AttemptTicket, model: string): void {
    this.release(ticket);
    ticket.health.lastError = {
      kind: 'model-missing',
      message: `model '${model}' not found on this endpoint`,
      at: this.options.now(),
    };
  }

  /**
   * At most maxEjectedPercent of the known endpoints may be ejected at once (rounded down: a lone
   * endpoint is never ejected), so that a wide outage or a bad gateway-side network never empties the
   * pool; an endpoint that is not ejected keeps getting tried, and answers fast when it is down.
   */
  private mayEject(candidate: EndpointHealth): boolean {
    const total = this.byName.size;
    let ejected = 0;
    for (const h of this.byName.values()) if (h !== candidate && h.isEjected) ejected++;
    const allowed = Math.floor((total * this.options.ejection.maxEjectedPercent) / 100);
    return ejected < allowed;
  }
}

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous + EWMA_ALPHA * (sample - previous);
}
