import { z } from 'zod';
import { plainMessage } from '../config/config-problems.js';
import { InvalidRequestError } from '../errors/gateway-error.js';

/** The body field of the request extension (seed llm-gateway). */
export const EXTENSION_FIELD = 'x-gateway';

const MAX_TIMEOUT_S = 3_600;

const extensionSchema = z.strictObject({
  cache: z.boolean().optional(),
  timeout: z.number().positive().max(MAX_TIMEOUT_S).optional(),
  endpoint: z.string().min(1).max(64).optional(),
  metadata: z
    .record(z.string(), z.unknown())
    .refine((m) => JSON.stringify(m).length <= 16_384, 'must be at most 16 KiB as JSON')
    .optional(),
});

export type RequestExtension = z.output<typeof extensionSchema>;

/**
 * The `x-gateway` field of a body, checked: per-request cache bypass, a total timeout in seconds (it
 * may only tighten), a preferred endpoint (a configured name), metadata for the ledger and the access
 * line. A malformed one is a 400 naming the field.
 */
export function requestExtension(
  value: unknown,
  endpointExists: (name: string) => boolean,
): RequestExtension {
  const result = extensionSchema.safeParse(value, { reportInput: true });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const field = `${EXTENSION_FIELD}.${issue.keys[0]}`;
      throw new InvalidRequestError(
        `Unknown field '${field}': '${EXTENSION_FIELD}' takes cache, timeout, endpoint and metadata.`,
        { param: field },
      );
    }
    const field = [EXTENSION_FIELD, ...issue.path.map(String)].join('.');
    throw new InvalidRequestError(`'${field}' ${plainMessage(issue)}.`, { param: field });
  }
  const extension = result.data;
  if (extension.endpoint !== undefined && !endpointExists(extension.endpoint))
    throw new InvalidRequestError(
      `'${EXTENSION_FIELD}.endpoint' names no endpoint of this gateway ('${extension.endpoint}').`,
      { param: `${EXTENSION_FIELD}.endpoint` },
    );
  return extension;
}
