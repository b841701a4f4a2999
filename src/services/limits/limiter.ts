import { randomUUID } from 'node:crypto';
import type { ConfigSource } from '../../config/config-store.js';
import { GatewayError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import {
  SLOT_RENEW_MS,
  type AdmitResult,
  type CheckState,
  type CounterCheck,
  type CounterStore,
  type Ticket,
} from '../../stores/counters/counter-store.js';
import type { Budget } from '../../stores/records/record-store.js';
import type { Principal } from '../core/principal.js';
import { estimatePromptTokens } from '../usage/token-estimate.js';
import { costOf } from '../usage/pricing.js';
import { rateLimitHeaders, refusal, type CheckMeta, type Scope } from './refusal.js';

const MINUTE_MS = 60_000;

const DAY_MS = 86_400_000;

/** What a set of scopes checks, and what its admissions give back: the same for every request. */
interface Plan {
  day: number;
  checks: CounterCheck[];
  meta: CheckMeta[];
  /** The smallest tpm limit and its scope: a reservation above it can never pass. */
  tightestTpm: { tpm: number; scope: Scope } | undefined;
  slotKeys: readonly string[];
  tokenKeys: readonly string[];
  budgets: ReadonlyArray<{ key: string; budget: Budget }>;
}

function buildPlan(scopes: readonly Scope[], now: number, day: number): Plan {
  const checks: CounterCheck[] = [];
  const meta: CheckMeta[] = [];
  const slotKeys: string[] = [];
  const tokenKeys: string[] = [];
  const budgets: Array<{ key: string; budget: Budget }> = [];
  let tightestTpm: Plan['tightestTpm'];
  for (const scope of scopes) {
    const { rpm, tpm, maxParallel, budget } = scope.limits;
    if (rpm !== undefined) {
      checks.push({ kind: 'count', key: `rpm:${scope.id}`, limit: rpm, windowMs: MINUTE_MS });
      meta.push({ scope, limit: 'rpm' });
    }
    if (tpm !== undefined) {
      checks.push({ kind: 'sum', key: `tpm:${scope.id}`, limit: tpm, windowMs: MINUTE_MS });
      meta.push({ scope, limit: 'tpm' });
      tokenKeys.push(`tpm:${scope.id}`);
      if (tightestTpm === undefined || tpm < tightestTpm.tpm) tightestTpm = { tpm, scope };
    }
    if (maxParallel !== undefined) {
      checks.push({ kind: 'slots', key: `par:${scope.id}`, limit: maxParallel });
      meta.push({ scope, limit: 'maxParallel' });
      slotKeys.push(`par:${scope.id}`);
    }
    if (budget !== undefined) {
      const key = budgetKey(scope.id, budget, now);
      checks.push({ kind: 'budget', key, limit: budget.amount });
      meta.push({ scope, limit: 'budget' });
      budgets.push({ key, budget });
    }
  }
  return { day, checks, meta, tightestTpm, slotKeys, tokenKeys, budgets };
}

export interface AdmitInput {
  principal: Principal;
  /** The model (or alias) asked for. */
  model: string;
  /** The request body, for the token reservation. */
  json: Readonly<Record<string, unknown>>;
  /** Tokens to reserve instead of the body's estimate (0 for an answer from the cache). */
  reserveTokens?: number;
}

/** What a finished request used, as far as it is known. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** The model that answered (priced by its own entry when it has one). */
  servedModel?: string | undefined;
}

export interface LimiterOptions {
  counters: CounterStore;
  config: ConfigSource;
  logger: Logger;
  now?: () => number;
}

/**
 * Limits at four scopes (key, team, model, global): requests per minute, tokens per minute (reserved
 * before the call, corrected after), requests in flight, and budgets. All the checks of one request
 * are one atomic step of the counter store: admitted under all its scopes, or refused under all.
 * A request no limit applies to costs nothing here.
 */
export class Limiter {
  private readonly counters: CounterStore;
  private readonly now: () => number;
  /** Admissions holding in-flight slots, renewed while they run. */
  private readonly held = new Set<Admission>();
  private renewTimer: NodeJS.Timeout | undefined;
  /** Since when the counter store has been failing (logged once per outage). */
  private outageSince: number | undefined;

  constructor(private readonly options: LimiterOptions) {
    this.counters = options.counters;
    this.now = options.now ?? Date.now;
  }

  /** The counter store's state, for the status route. */
  get status(): { backend: 'memory' | 'redis'; reachable: boolean; unreachableSince: string | null } {
    return {
      backend: this.counters.backend,
      reachable: this.outageSince === undefined,
      unreachableSince: this.outageSince === undefined ? null : new Date(this.outageSince).toISOString(),
    };
  }

  /**
   * Admits a request, or rejects with the 429 (throws the 400 for a reservation no limit could ever
   * take). Undefined, synchronously, when no limit applies; a promise of undefined when the counter
   * store failed and limits.onStoreError is open.
   */
  admit(input: AdmitInput): Promise<Admission | undefined> | undefined {
    const scopes = this.scopesOf(input.principal, input.model);
    // Nothing limited (the common case without limits): no promise, no counter store.
    if (scopes.length === 0) return undefined;
    const plan = this.planOf(scopes);
    if (plan.checks.length === 0) return undefined;
    return this.admitChecks(input.model, plan, this.reserved(plan, input.json, input.reserveTokens));
  }

  private admitChecks(model: string, plan: Plan, tokens: number): Promise<Admission | undefined> {
    // Unique across replicas (a random prefix per process) without a UUID per request.
    const id = this.idPrefix + (this.admitted++).toString(36);
    // The plan's own array of checks, the same for every request of these scopes. A `then`, not an
    // async function: one closure per request rather than a suspended frame.
    return this.counters
      .admit(id, plan.checks, tokens)
      .then((result) => this.admission(result, plan, model), this.storeFailure);
  }

  /** The counter store's answer: the admission, or the 429 of the first limit that refused. */
  private admission(result: AdmitResult, plan: Plan, model: string): Admission {
    this.recovered();
    const { checks } = plan;
    if (!result.ok)
      throw refusal(
        plan.meta[result.index]!,
        checks[result.index]!,
        result,
        rateLimitHeaders(checks, result.states),
      );
    const admission = new Admission(this, result.ticket, plan, checks, result.states);
    admission.model = model;
    if (admission.slotKeys.length > 0) this.hold(admission);
    return admission;
  }

  private readonly idPrefix = `${randomUUID().slice(0, 13)}-`;
  private admitted = 0;
  /** Scopes per caller and model, for the configuration they were built from (a reload builds anew). */
  private readonly plans = new WeakMap<readonly Scope[], Plan>();
  private readonly scopeCache = new WeakMap<Principal, { config: object; byModel: Map<string, Scope[]> }>();

  private scopesOf(principal: Principal, model: string): Scope[] {
    const config = this.options.config.current;
    let entry = this.scopeCache.get(principal);
    if (entry?.config !== config) {
      entry = { config, byModel: new Map() };
      this.scopeCache.set(principal, entry);
    }
    let scopes = entry.byModel.get(model);
    if (!scopes) {
      scopes = this.buildScopes(principal, model);
      // Bounded: a client inventing model names must not grow it without end.
      if (entry.byModel.size >= 1_000) entry.byModel.clear();
      entry.byModel.set(model, scopes);
    }
    return scopes;
  }

  private buildScopes(principal: Principal, model: string): Scope[] {
    const { limits } = this.options.config.current;
    const scopes: Scope[] = [];
    if (principal.keyLimits)
      scopes.push({
        id: `key:${principal.keyId}`,
        label: `key '${principal.keyName ?? principal.keyId}' (${principal.keyId})`,
        limits: principal.keyLimits,
      });
    if (principal.teamLimits && principal.team)
      scopes.push({
        id: `team:${principal.team}`,
        label: `team '${principal.team}'`,
        limits: principal.teamLimits,
      });
    // Own entries only: a model named `constructor` is no entry of the table.
    const modelLimits = Object.hasOwn(limits.models, model) ? limits.models[model] : undefined;
    if (modelLimits) scopes.push({ id: `model:${model}`, label: `model '${model}'`, limits: modelLimits });
    if (limits.global) scopes.push({ id: 'global', label: 'the gateway', limits: limits.global });
    return scopes;
  }

  /** What a set of scopes checks: built once per set (and day, for the budgets' periods). */
  private planOf(scopes: readonly Scope[]): Plan {
    const now = this.now();
    const day = Math.floor(now / DAY_MS);
    let plan = this.plans.get(scopes);
    if (plan?.day !== day) {
      plan = buildPlan(scopes, now, day);
      this.plans.set(scopes, plan);
    }
    return plan;
  }

  /** What a request weighs under its tpm limits: its token reservation (0 where tokens are not limited). */
  private reserved(
    plan: Plan,
    json: Readonly<Record<string, unknown>>,
    reserveTokens: number | undefined,
  ): number {
    if (plan.tightestTpm === undefined) return 0;
    const reserve = reserveTokens ?? this.reservation(json);
    const { tpm, scope } = plan.tightestTpm;
    if (reserve > tpm)
      throw new GatewayError(
        `This request alone would use up to ${reserve} tokens (its prompt and max_tokens), more than the ` +
          `${tpm} tokens per minute of ${scope.label}: it can never pass. Lower max_tokens or shorten the prompt.`,
        { code: 'request_too_large', status: 400, param: 'max_tokens' },
      );
    return reserve;
  }

  /** Tokens reserved for a request: its prompt's estimate and the most it may generate. */
  private reservation(json: Readonly<Record<string, unknown>>): number {
    const max = json.max_completion_tokens ?? json.max_tokens;
    const completion =
      typeof max === 'number' && Number.isFinite(max) && max > 0
        ? Math.ceil(max)
        : this.options.config.current.limits.defaultReserveTokens;
    // `n` answers may each take up to that many.
    const n =
      typeof json.n === 'number' && Number.isInteger(json.n) && json.n > 1 ? Math.min(json.n, 128) : 1;
    return estimatePromptTokens(json) + completion * n;
  }

  /** Redis unreachable: the request goes on (open) or is refused (closed), and the outage is logged once. */
  private storeFailed(err: unknown): undefined {
    this.noteOutage(err);
    if (this.options.config.current.limits.onStoreError === 'open') return undefined;
    throw new GatewayError(
      'Limits cannot be checked right now (the gateway’s counter store is unreachable). Try again shortly.',
      { code: 'limits_unavailable', retryable: true, retryAfterSeconds: 5 },
    );
  }

  /** The store failed: an outage begins (logged once, shown in the status) if none is going on. */
  private noteOutage(err: unknown): void {
    const { onStoreError } = this.options.config.current.limits;
    if (this.outageSince === undefined) {
      this.outageSince = this.now();
      this.options.logger.error(
        { err: (err as Error).message, onStoreError },
        onStoreError === 'open'
          ? 'limit counters unreachable: requests pass without limits until they are back'
          : 'limit counters unreachable: limited requests are refused until they are back',
      );
    }
  }

  private recovered(): void {
    if (this.outageSince === undefined) return;
    this.options.logger.info(
      { unreachableForMs: this.now() - this.outageSince },
      'limit counters reachable again',
    );
    this.outageSince = undefined;
  }

  private hold(admission: Admission): void {
    this.held.add(admission);
    if (!this.renewTimer) {
      this.renewTimer = setInterval(() => void this.renew(), SLOT_RENEW_MS);
      this.renewTimer.unref();
    }
  }

  /** Keeps the slots of running requests (long streams) alive. */
  private async renew(): Promise<void> {
    if (this.held.size === 0) {
      clearInterval(this.renewTimer);
      this.renewTimer = undefined;
      return;
    }
    const held = [...this.held].map((a) => ({ ticket: a.ticket, slotKeys: a.slotKeys }));
    await this.counters.renew(held).catch(this.endFailure);
  }

  /**
   * @internal An admission's end: slots back, tokens corrected, spending added. Nobody waits for it
   * (the answer is over): no promise is made here, and a store failure is handled as any other.
   */
  settle(admission: Admission, usage: Usage | undefined): void {
    this.held.delete(admission);
    const { counters } = this;
    if (admission.slotKeys.length > 0) this.watch(counters.release(admission.ticket, admission.slotKeys));
    if (usage && admission.tokenKeys.length > 0)
      this.watch(
        counters.correct(admission.ticket, admission.tokenKeys, usage.promptTokens + usage.completionTokens),
      );
    if (usage && admission.budgets.length > 0) {
      const cost = this.costOf(usage, admission.model);
      const now = this.now();
      const periods = admission.budgets.map((b) => ({ key: b.key, ttlMs: budgetTtl(b.budget, now) }));
      if (cost > 0) counters.spend(periods, cost).catch(this.endFailure);
    }
  }

  /** The counter store failed: open (undefined) or closed (throws), per limits.onStoreError. */
  private readonly storeFailure = (err: unknown): undefined => this.storeFailed(err);
  /**
   * Ends (releases, corrections, spending, renewals) that could not be sent: noted, never thrown
   * (nobody waits for them; the counters' own expiry takes the slots back).
   */
  private readonly endFailure = (err: unknown): void => this.noteOutage(err);

  /** The last promise of ends watched: a store gives the ends it sends together one promise. */
  private watched: Promise<void> | undefined;

  /** Handles the failure of sending ends, once per promise (not once per request that ended). */
  private watch(sent: Promise<void>): void {
    if (sent === this.watched) return;
    this.watched = sent;
    sent.catch(this.endFailure);
  }

  /** The cost of a request by the price table (the served model's entry, else the asked one's). */
  costOf(usage: Usage, askedModel: string): number {
    return costOf(this.options.config.current.pricing, usage, askedModel);
  }

  stop(): void {
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }
}

/** An admitted request: what to give back and correct when it ends, and the headers it answers with. */
export class Admission {
  readonly slotKeys: readonly string[];
  readonly tokenKeys: readonly string[];
  readonly budgets: ReadonlyArray<{ key: string; budget: Budget }>;
  readonly headers: Record<string, string>;
  model = '';
  private settled = false;

  constructor(
    private readonly limiter: Limiter,
    readonly ticket: Ticket,
    plan: Plan,
    checks: readonly CounterCheck[],
    states: readonly CheckState[],
  ) {
    this.slotKeys = plan.slotKeys;
    this.tokenKeys = plan.tokenKeys;
    this.budgets = plan.budgets;
    this.headers = rateLimitHeaders(checks, states);
  }

  /** Gives back what the request held; once, however often it is called. */
  finish(usage: Usage | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.limiter.settle(this, usage);
  }
}

/** The counter of a budget's current period: a new key each day or month. */
function budgetKey(scopeId: string, budget: Budget, now: number): string {
  const d = new Date(now);
  const period =
    budget.period === 'day'
      ? d.toISOString().slice(0, 10)
      : budget.period === 'month'
        ? d.toISOString().slice(0, 7)
        : 'total';
  return `budget:${scopeId}:${period}`;
}

/** How long a period's counter must live: to the end of the period (UTC). */
function budgetTtl(budget: Budget, now: number): number | undefined {
  if (budget.period === 'total') return undefined;
  const d = new Date(now);
  const end =
    budget.period === 'day'
      ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
      : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return end - now;
}
