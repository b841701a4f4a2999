import { GatewayError, ModelNotFoundError, clip } from '../../errors/gateway-error.js';
import type { EndpointRegistry } from './registry.js';

/** Models named in full in a `model_not_found` message; past this, the closest few. */
const LIST_ALL_UP_TO = 10;
const CLOSEST = 5;

/**
 * The error for a model no endpoint serves. When some endpoints have not listed their models (down
 * since start, a wrong key, no /v1/models) the model may be theirs: that is a `503` with each one's
 * reason, not a `404`. Otherwise a `404` that lists the models there are (or the closest ones).
 */
export function missingModelError(
  registry: EndpointRegistry,
  model: string,
  options: { aliases: Readonly<Record<string, readonly string[]>>; retryAfterSeconds: number },
): GatewayError {
  const unknown = registry.endpoints.filter((ep) => !ep.modelsKnown && ep.config.weight > 0);
  if (unknown.length > 0) {
    const reasons = unknown
      .slice(0, 5)
      .map((ep) => `${ep.config.name}: ${ep.lastDiscoveryError ?? 'not asked yet'}`)
      .join('; ');
    return new GatewayError(
      `The model '${clip(model)}' is not listed by any endpoint that has listed its models, and ` +
        `${unknown.length === 1 ? 'one endpoint has' : `${unknown.length} endpoints have`} not listed ` +
        `theirs yet (${reasons}${unknown.length > 5 ? '; …' : ''}). Retry later.`,
      { code: 'model_list_incomplete', retryable: true, retryAfterSeconds: options.retryAfterSeconds },
    );
  }
  const ids = new Set(registry.listModels().map((m) => m.id));
  for (const [alias, targets] of Object.entries(options.aliases)) {
    if (targets.some((t) => registry.serving(t).length > 0)) ids.add(alias);
  }
  return new ModelNotFoundError(model, suggestions(model, [...ids]));
}

/** Every model when there are few, else the closest ones to what was asked. */
export function suggestions(asked: string, ids: readonly string[]): { all: boolean; ids: string[] } {
  if (ids.length <= LIST_ALL_UP_TO) return { all: true, ids: [...ids] };
  const target = normalise(asked);
  const scored = ids.map((id) => {
    const n = normalise(id);
    // Containment counts as close: `llama3` for `llama3.1:8b`.
    const contained = n.includes(target) || target.includes(n);
    return { id, score: contained ? 0 : distance(target.slice(0, 64), n.slice(0, 64)) };
  });
  scored.sort((a, b) => a.score - b.score || a.id.localeCompare(b.id));
  return { all: false, ids: scored.slice(0, CLOSEST).map((s) => s.id) };
}

function normalise(id: string): string {
  return id.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Levenshtein distance, two rows. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
