import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigSource } from '../config/config-store.js';
import type { Principal } from '../services/core/principal.js';
import type { RequestTrace } from '../services/core/request.js';
import type { UsageLedger } from '../services/usage/ledger.js';
import { costOf } from '../services/usage/pricing.js';
import { estimatePromptTokens } from '../services/usage/token-estimate.js';
import { requestIdOf } from './middleware/access-log.js';

/** A request's tokens: as the upstream reported them, else estimated (or none if nothing answered). */
export interface UsedTokens {
  promptTokens: number;
  completionTokens: number;
  estimated: boolean;
  servedModel: string | undefined;
}

/** Events of a stream that carry no generated token: the role delta, the finish chunk, [DONE]. */
const FRAMING_EVENTS = 3;

export function usageOf(trace: RequestTrace, json: Readonly<Record<string, unknown>>): UsedTokens {
  const servedModel = trace.servedModel ?? (trace.endpoint === undefined ? undefined : trace.model);
  // An answer from the cache used no tokens of any model.
  if (trace.cache === 'HIT') return { promptTokens: 0, completionTokens: 0, estimated: false, servedModel };
  if (trace.promptTokens !== undefined)
    return {
      promptTokens: trace.promptTokens,
      completionTokens: trace.completionTokens ?? 0,
      estimated: false,
      servedModel,
    };
  // No answer reached the client (a refusal, every upstream failed): nothing to charge for.
  if (trace.ttfbMs === undefined)
    return { promptTokens: 0, completionTokens: 0, estimated: false, servedModel };
  const completion = trace.stream
    ? Math.max(0, (trace.streamEvents ?? 0) - FRAMING_EVENTS)
    : Math.ceil((trace.answerChars ?? 0) / 4);
  return {
    promptTokens: estimatePromptTokens(json),
    completionTokens: completion,
    estimated: true,
    servedModel,
  };
}

/** Turns a finished request into its ledger record. */
export class UsageRecorder {
  constructor(
    private readonly ledger: UsageLedger,
    private readonly config: ConfigSource,
    readonly now: () => number,
  ) {}

  record(input: {
    req: IncomingMessage;
    res: ServerResponse;
    trace: RequestTrace;
    principal: Principal;
    json: Readonly<Record<string, unknown>>;
    used: UsedTokens;
    startedAt: number;
    /** The request's `x-gateway.metadata`. */
    metadata?: Record<string, unknown> | undefined;
  }): number {
    const { req, res, trace, principal, json, used } = input;
    const now = this.now();
    const model = clean(trace.model ?? '');
    const bodyUser = typeof json.user === 'string' ? clean(json.user.slice(0, 256)) : null;
    const cost = costOf(this.config.current.pricing, used, model);
    this.ledger.record({
      id: requestIdOf(req),
      time: now,
      keyId: principal.kind === 'anonymous' ? null : principal.keyId,
      team: principal.team,
      user: principal.user ?? bodyUser,
      model,
      servedModel: used.servedModel === undefined ? null : clean(used.servedModel),
      endpoint: trace.endpoint ?? null,
      stream: trace.stream === true,
      status: res.statusCode,
      errorCode: trace.errorCode ?? (res.writableEnded ? null : 'client_closed'),
      promptTokens: used.promptTokens,
      completionTokens: used.completionTokens,
      estimated: used.estimated,
      cost,
      ttftMs: trace.ttfbMs ?? null,
      durationMs: Math.max(0, Math.round(now - input.startedAt)),
      attempts: trace.attempts ?? 0,
      cached: trace.cache === 'HIT',
      metadata: input.metadata ?? null,
    });
    return cost;
  }
}

/**
 * Text as the ledger stores it: without NUL characters, which PostgreSQL refuses in text columns (one
 * such record would otherwise hold back its whole batch).
 */
function clean(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}
