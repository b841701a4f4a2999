import { Router, type Request, type RequestHandler } from 'express';
import { GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import {
  USAGE_GROUPS,
  type RecordStore,
  type UsageFilter,
  type UsageGroup,
  type UsageRecord,
  type UsageTotals,
} from '../../stores/records/record-store.js';
import type { UsageLedger } from '../../services/usage/ledger.js';
import { principalOf } from '../principal.js';

const MAX_PAGE = 1_000;
const FILTERS = ['from', 'to', 'key', 'team', 'model'] as const;

/** One query parameter as a single string (a repeated one is a 400). */
function param(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string')
    throw new InvalidRequestError(`'${name}' must be given once, as text.`, { param: name });
  return value;
}

/** An ISO-8601 date or time, or Unix seconds, as epoch ms. */
function time(req: Request, name: 'from' | 'to'): number | undefined {
  const value = param(req, name);
  if (value === undefined || value.trim() === '') return undefined;
  const ms = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) * 1_000 : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new InvalidRequestError(
      `'${name}' must be an ISO-8601 date or time (2026-12-01, 2026-12-01T12:00:00Z) or Unix seconds.`,
      { param: name },
    );
  return ms;
}

function filterOf(req: Request, allowed: readonly string[]): UsageFilter {
  for (const name of Object.keys(req.query))
    if (!allowed.includes(name))
      throw new InvalidRequestError(
        `Unknown query parameter '${name}'; this route takes ${allowed.map((a) => `'${a}'`).join(', ')}.`,
        { param: name },
      );
  return {
    from: time(req, 'from'),
    to: time(req, 'to'),
    keyId: param(req, 'key'),
    team: param(req, 'team'),
    model: param(req, 'model'),
  };
}

function groupOf(req: Request): UsageGroup | undefined {
  const value = param(req, 'group_by');
  if (value === undefined || value === '') return undefined;
  if (!(USAGE_GROUPS as readonly string[]).includes(value))
    throw new InvalidRequestError(`'group_by' must be one of ${USAGE_GROUPS.join(', ')}.`, {
      param: 'group_by',
    });
  return value as UsageGroup;
}

function totalsView(t: UsageTotals) {
  return {
    requests: t.requests,
    prompt_tokens: t.promptTokens,
    completion_tokens: t.completionTokens,
    total_tokens: t.promptTokens + t.completionTokens,
    cost: round(t.cost),
    cache_hits: t.cacheHits,
  };
}

function round(cost: number): number {
  return Math.round(cost * 1e9) / 1e9;
}

/** The summary: totals, and a row per group when asked. */
async function summary(records: RecordStore, filter: UsageFilter, groupBy: UsageGroup | undefined) {
  const { totals, groups } = await records.usageSummary(filter, groupBy);
  return {
    object: 'usage',
    total_requests: totals.requests,
    total_tokens: totals.promptTokens + totals.completionTokens,
    total_cost: round(totals.cost),
    cache_hits: totals.cacheHits,
    cache_misses: totals.requests - totals.cacheHits,
    ...(groupBy === undefined
      ? {}
      : { group_by: groupBy, data: groups.map((g) => ({ [groupBy]: g.group, ...totalsView(g) })) }),
  };
}

export function recordView(r: UsageRecord) {
  return { ...r, time: new Date(r.time).toISOString() };
}

/**
 * `GET /api/v1/usage` and `GET /api/v1/usage/records` (admin key). Records still queued for the
 * ledger are written first, so an answer includes every request finished before it was asked.
 */
export function usageRoutes(records: RecordStore, ledger: UsageLedger): Router {
  const router = Router();
  router.get('/usage', async (req, res) => {
    const filter = filterOf(req, [...FILTERS, 'group_by']);
    const groupBy = groupOf(req);
    await ledger.flush();
    res.json(await summary(records, filter, groupBy));
  });
  router.get('/usage/records', async (req, res) => {
    const filter = filterOf(req, [...FILTERS, 'limit', 'cursor']);
    const limitText = param(req, 'limit');
    const limit = limitText === undefined ? 100 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw new InvalidRequestError(`'limit' must be a whole number from 1 to ${MAX_PAGE}.`, {
        param: 'limit',
      });
    const cursorText = param(req, 'cursor');
    const cursor = cursorText === undefined ? undefined : Number(cursorText);
    if (cursor !== undefined && (!Number.isInteger(cursor) || cursor < 0))
      throw new InvalidRequestError("'cursor' must be the next_cursor of a previous page.", {
        param: 'cursor',
      });
    await ledger.flush();
    const rows = await records.usageRecords(filter, { limit: limit + 1, before: cursor });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    res.json({
      object: 'list',
      data: page.map((r) => recordView(r.record)),
      next_cursor: more ? String(page.at(-1)!.cursor) : null,
    });
  });
  return router;
}

/** `GET /v1/usage`: a key's own usage (the same summary, for that key alone). */
export function ownUsage(records: RecordStore, ledger: UsageLedger): RequestHandler {
  return async (req, res) => {
    const principal = principalOf(res);
    if (principal.kind === 'anonymous')
      throw new GatewayError('Usage is kept per key: call this route with a key.', {
        code: 'invalid_request',
      });
    const filter = filterOf(req, ['from', 'to', 'model', 'group_by']);
    const groupBy = groupOf(req);
    if (groupBy === 'key' || groupBy === 'team')
      throw new InvalidRequestError("'group_by' must be model, user, endpoint or day here.", {
        param: 'group_by',
      });
    await ledger.flush();
    res.json(await summary(records, { ...filter, keyId: principal.keyId }, groupBy));
  };
}
