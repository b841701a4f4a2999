import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { plainMessage } from '../../config/config-problems.js';
import { limitsSchema, parseDuration } from '../../config/schema.js';
import { GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import type { ClaimService } from '../../services/keys/claim-service.js';
import type { KeyService } from '../../services/keys/key-service.js';

const MAX_LIST = 1_000;

const id = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters long')
  .regex(/^[\w.:@-]+$/, 'may contain only letters, digits and . _ - : @');
/** Text without NUL characters (PostgreSQL refuses them in text columns). */
const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters long`)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL characters');
const models = z
  .array(text(256))
  .max(1_000)
  .transform((list) => [...new Set(list)]);
const metadata = z
  .record(z.string(), z.unknown())
  .refine((m) => JSON.stringify(m).length <= 16_384, 'must be at most 16 KiB as JSON');
const isoTime = z.iso.datetime({
  offset: true,
  error: 'must be an ISO-8601 time such as 2027-01-31T00:00:00Z',
});
/** The latest expiry a key may have: 100 years (anything later is "never": leave the field out). */
const MAX_EXPIRY_MS = 100 * 365 * 86_400_000;
const expiresIn = z.union([z.string(), z.number()], {
  error: 'must be a duration such as "30d", "12h" or seconds',
});

const createKeyBody = z.strictObject({
  name: text(200),
  team: id.optional(),
  user: text(256).optional(),
  models: models.optional(),
  expiresAt: isoTime.optional(),
  expiresIn: expiresIn.optional(),
  limits: limitsSchema.optional(),
  metadata: metadata.optional(),
});

const patchKeyBody = z.strictObject({
  name: text(200).optional(),
  team: id.nullable().optional(),
  user: text(256).nullable().optional(),
  models: models.nullable().optional(),
  expiresAt: isoTime.nullable().optional(),
  expiresIn: expiresIn.optional(),
  limits: limitsSchema.nullable().optional(),
  metadata: metadata.nullable().optional(),
});

const createTeamBody = z.strictObject({ id, limits: limitsSchema.optional(), models: models.optional() });
const patchTeamBody = z.strictObject({
  limits: limitsSchema.nullable().optional(),
  models: models.nullable().optional(),
});

const listQuery = z.strictObject({
  team: z.string().optional(),
  user: z.string().optional(),
  after: z.string().optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(MAX_LIST, `must be at most ${MAX_LIST}`)
    .default(100),
});

const claimBody = z.strictObject({
  acceptTerms: z.literal(true, { error: 'must be true: the terms of use have to be accepted' }),
  identity: text(256).optional(),
});

/** Parses with a schema; the first problem is a 400 naming its field, in plain words. */
function parse<T extends z.ZodType>(schema: T, value: unknown, where = 'body'): z.output<T> {
  const result = schema.safeParse(value === undefined ? {} : value, { reportInput: true });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const fields = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    throw new InvalidRequestError(
      `Unknown field${fields.length > 1 ? 's' : ''} in the ${where}: ${fields.map((k) => `'${k}'`).join(', ')}.`,
      { param: fields[0] },
    );
  }
  const message = plainMessage(issue);
  throw new InvalidRequestError(path ? `'${path}' ${message}.` : `The ${where} ${message}.`, {
    param: path || undefined,
  });
}

/** `expiresAt` or `expiresIn` (not both) as epoch ms; `null` clears it (PATCH). */
function expiryOf(
  body: { expiresAt?: string | null | undefined; expiresIn?: string | number | undefined },
  now: number,
) {
  if (body.expiresAt !== undefined && body.expiresIn !== undefined)
    throw new InvalidRequestError("Give either 'expiresAt' or 'expiresIn', not both.", {
      param: 'expiresIn',
    });
  if (body.expiresIn !== undefined) {
    const ms = parseDuration(body.expiresIn);
    if (ms === undefined)
      throw new InvalidRequestError(
        `'expiresIn' must be a duration such as "30d", "12h", "90m" or a number of seconds.`,
        { param: 'expiresIn' },
      );
    if (ms > MAX_EXPIRY_MS)
      throw new InvalidRequestError(
        `'expiresIn' must be at most 100 years; leave it out for a key that never expires.`,
        { param: 'expiresIn' },
      );
    return now + ms;
  }
  if (body.expiresAt === null) return null;
  if (body.expiresAt === undefined) return undefined;
  const at = Date.parse(body.expiresAt);
  if (at <= now) throw new InvalidRequestError("'expiresAt' is in the past.", { param: 'expiresAt' });
  if (at > now + MAX_EXPIRY_MS)
    throw new InvalidRequestError(
      "'expiresAt' must be within 100 years; leave it out for a key that never expires.",
      { param: 'expiresAt' },
    );
  return at;
}

/** The admin API's JSON bodies: up to 1 MiB; a body that is not JSON is a 400 that says so. */
// Any content type is read as JSON (`curl -d` sends a form type); the schema says what is wrong with it.
const parseJsonBody = express.json({ limit: '1mb', strict: false, type: () => true });
export const jsonBody: RequestHandler = (req, res, next) =>
  parseJsonBody(req, res, (err?: unknown) => {
    const type = (err as { type?: string } | undefined)?.type;
    if (type === 'entity.parse.failed')
      return next(new InvalidRequestError('The body is not valid JSON.', { code: 'invalid_json' }));
    if (type === 'entity.too.large')
      return next(
        new InvalidRequestError('The body is over 1 MiB.', { status: 413, code: 'request_too_large' }),
      );
    next(err);
  });

function idOf(req: express.Request): string {
  const { id } = req.params as Record<string, string | string[] | undefined>;
  return Array.isArray(id) ? id.join('/') : (id ?? '');
}

/** `/api/v1/keys` and `/api/v1/teams` (admin key). */
export function keyRoutes(keys: KeyService, now: () => number = Date.now): Router {
  const router = Router();

  router.post('/keys', jsonBody, async (req, res) => {
    const body = parse(createKeyBody, req.body);
    const expiresAt = expiryOf(body, now()) ?? undefined;
    const { view, secret } = await keys.create({ ...body, expiresAt });
    res.status(201).setHeader('cache-control', 'no-store');
    res.json({ ...view, key: secret });
  });
  router.get('/keys', async (req, res) => {
    const query = parse(listQuery, req.query, 'query');
    const data = await keys.list({ ...query, limit: query.limit + 1 });
    const more = data.length > query.limit;
    const page = more ? data.slice(0, query.limit) : data;
    res.json({ object: 'list', data: page, has_more: more, next_cursor: more ? page.at(-1)!.id : null });
  });
  router.get('/keys/:id', async (req, res) => {
    res.json(await keys.get(idOf(req)));
  });
  router.patch('/keys/:id', jsonBody, async (req, res) => {
    const body = parse(patchKeyBody, req.body);
    const { expiresAt: _a, expiresIn: _i, ...rest } = body;
    const expiresAt = expiryOf(body, now());
    const patch = { ...rest, ...(expiresAt === undefined ? {} : { expiresAt }) };
    res.json(await keys.update(idOf(req), patch));
  });
  router.delete('/keys/:id', async (req, res) => {
    res.json(await keys.revoke(idOf(req)));
  });
  router.post('/keys/:id/rotate', async (req, res) => {
    const { view, secret } = await keys.rotate(idOf(req));
    res.setHeader('cache-control', 'no-store');
    res.json({ ...view, key: secret });
  });

  router.post('/teams', jsonBody, async (req, res) => {
    res.status(201).json(await keys.createTeam(parse(createTeamBody, req.body)));
  });
  router.get('/teams', async (_req, res) => {
    res.json({ object: 'list', data: await keys.listTeams() });
  });
  router.get('/teams/:id', async (req, res) => {
    res.json(await keys.getTeam(idOf(req)));
  });
  router.patch('/teams/:id', jsonBody, async (req, res) => {
    res.json(await keys.updateTeam(idOf(req), parse(patchTeamBody, req.body)));
  });
  router.delete('/teams/:id', async (req, res) => {
    res.json(await keys.deleteTeam(idOf(req)));
  });
  return router;
}

/** `POST /api/v1/keys/claim`: no auth (permissionless keys); 404 while claims are off. */
export function claimRoute(claims: ClaimService): RequestHandler[] {
  return [
    (_req, _res, next) =>
      next(
        claims.enabled
          ? undefined
          : new GatewayError('Keys cannot be claimed here: ask the operator for a key.', {
              code: 'claims_disabled',
            }),
      ),
    jsonBody,
    async (req, res) => {
      const body = parse(claimBody, req.body);
      const token = req.headers['x-captcha-token'];
      const claimed = await claims.claim({
        identity: body.identity,
        captchaToken: typeof token === 'string' && token.trim() !== '' ? token.trim() : undefined,
        address: req.ip ?? req.socket.remoteAddress ?? 'unknown',
      });
      res.status(201).setHeader('cache-control', 'no-store');
      res.json(claimed);
    },
  ];
}
