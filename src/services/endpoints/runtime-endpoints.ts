import type { ConfigSource } from '../../config/config-store.js';
import { runtimeEndpoint } from '../../config/schema.js';
import type { EndpointConfig } from '../../config/types.js';
import { GatewayError, InvalidRequestError } from '../../errors/gateway-error.js';
import type { Logger } from '../../observability/logger.js';
import type { RecordStore, RuntimeEndpointRecord } from '../../stores/records/record-store.js';

/** Settings an operator may change with PATCH (the name is the endpoint's identity). */
const PATCHABLE = new Set([
  'url',
  'apiKey',
  'priority',
  'weight',
  'models',
  'maxConcurrent',
  'timeouts',
  'modelNames',
  'provider',
  'apiVersion',
  'deployments',
  'defaultMaxTokens',
]);

export interface RuntimeEndpointsOptions {
  records: RecordStore;
  config: ConfigSource;
  logger: Logger;
  now: () => number;
  /** Names of the endpoints of the config file (those are not the admin API's to change). */
  fileEndpoints: () => readonly EndpointConfig[];
  /** Puts the runtime endpoints in force (the registry and the configuration in force). */
  apply: (endpoints: readonly EndpointConfig[]) => void;
  /** Tells the other replicas that the stored endpoints changed (Redis pub/sub), if they can hear. */
  changed?: () => void;
}

/**
 * Endpoints added, changed and removed through the admin API, kept in the durable store: every worker
 * and replica applies them when told through Redis (a message on the shared channel), else when the
 * store's change counter moves (the key service polls it every 250 ms), and they come back at the next
 * start. Those of the config file keep their place; a runtime
 * endpoint never takes the name of one.
 */
export class RuntimeEndpoints {
  private records: RuntimeEndpointRecord[] = [];
  private applied = '';

  constructor(private readonly options: RuntimeEndpointsOptions) {}

  /** The names of the endpoints in force that came from the admin API. */
  readonly names = new Set<string>();

  /** Reads the store and applies what changed (at start, and when another replica changed it). */
  async refresh(): Promise<void> {
    this.records = await this.options.records.listEndpoints();
    this.applyRecords();
  }

  /** Applies the records again if what they make changed. */
  applyRecords(): void {
    const endpoints = this.configs();
    const fingerprint = JSON.stringify(endpoints);
    if (fingerprint === this.applied) return;
    this.applied = fingerprint;
    this.options.apply(endpoints);
  }

  /**
   * The runtime endpoints as the configuration in force has them (under its global timeouts), without
   * those whose name an endpoint of the config file has.
   */
  configs(): EndpointConfig[] {
    const taken = new Set(this.options.fileEndpoints().map((e) => e.name));
    const endpoints: EndpointConfig[] = [];
    for (const record of this.records) {
      if (taken.has(record.name)) {
        this.options.logger.warn(
          { endpoint: record.name },
          'a runtime endpoint has the name of an endpoint of the config file: the file’s is used',
        );
        continue;
      }
      const checked = runtimeEndpoint(record.spec, this.options.config.current.routing);
      if (!checked.ok) {
        this.options.logger.error(
          { endpoint: record.name, problems: checked.problems },
          'runtime endpoint skipped',
        );
        continue;
      }
      endpoints.push(checked.endpoint);
    }
    this.names.clear();
    for (const e of endpoints) this.names.add(e.name);
    return endpoints;
  }

  /** `POST /api/v1/endpoints`. */
  async add(body: unknown): Promise<RuntimeEndpointRecord> {
    const spec = this.check(body);
    const name = spec.name as string;
    if (this.options.fileEndpoints().some((e) => e.name === name))
      throw new GatewayError(`'${name}' is an endpoint of the config file: change it there.`, {
        code: 'endpoint_exists',
        param: 'name',
      });
    const now = this.options.now();
    const record = { name, spec, createdAt: now, updatedAt: now };
    if (!(await this.options.records.insertEndpoint(record)))
      throw new GatewayError(`An endpoint named '${name}' exists: PATCH it, or pick another name.`, {
        code: 'endpoint_exists',
        param: 'name',
      });
    await this.refresh();
    this.options.changed?.();
    return record;
  }

  /** `PATCH /api/v1/endpoints/{name}`: the fields given replace those stored (null removes one). */
  async update(name: string, body: unknown): Promise<RuntimeEndpointRecord> {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new InvalidRequestError('The body must be a JSON object of endpoint fields.', {
        code: 'invalid_request',
      });
    const current = await this.existing(name);
    const patch = body as Record<string, unknown>;
    for (const field of Object.keys(patch))
      if (!PATCHABLE.has(field))
        throw new InvalidRequestError(
          field === 'name'
            ? 'An endpoint’s name cannot change: add one with the new name, then delete this one.'
            : `Unknown field '${field}': an endpoint has url, provider, apiKey, apiVersion, deployments, defaultMaxTokens, priority, weight, models, maxConcurrent, timeouts, modelNames.`,
          { code: 'invalid_request', param: field },
        );
    const merged: Record<string, unknown> = { ...current.spec };
    for (const [field, value] of Object.entries(patch)) {
      if (value === null) delete merged[field];
      else merged[field] = value;
    }
    const spec = this.check(merged);
    const now = this.options.now();
    if (!(await this.options.records.updateEndpoint(name, spec, now))) throw notFound(name);
    await this.refresh();
    this.options.changed?.();
    return { ...current, spec, updatedAt: now };
  }

  /** `DELETE /api/v1/endpoints/{name}`: no new request goes to it; those in flight finish. */
  async remove(name: string): Promise<void> {
    await this.existing(name);
    if (!(await this.options.records.deleteEndpoint(name))) throw notFound(name);
    await this.refresh();
    this.options.changed?.();
  }

  private async existing(name: string): Promise<RuntimeEndpointRecord> {
    if (this.options.fileEndpoints().some((e) => e.name === name))
      throw new GatewayError(`'${name}' is an endpoint of the config file: change it there (then reload).`, {
        code: 'endpoint_in_config',
      });
    const found = (await this.options.records.listEndpoints()).find((r) => r.name === name);
    if (!found) throw notFound(name);
    return found;
  }

  /** The body as stored: checked like an endpoint of the config file, as the operator wrote it. */
  private check(body: unknown): Record<string, unknown> {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new InvalidRequestError('The body must be a JSON object of endpoint fields (url, name, …).', {
        code: 'invalid_request',
      });
    const checked = runtimeEndpoint(body, this.options.config.current.routing);
    if (!checked.ok) {
      const first = checked.problems[0]!;
      throw new InvalidRequestError(`Invalid endpoint: ${checked.problems.join('; ')}.`, {
        code: 'invalid_request',
        param: first.includes(':') ? first.slice(0, first.indexOf(':')) : undefined,
      });
    }
    return body as Record<string, unknown>;
  }
}

function notFound(name: string): GatewayError {
  return new GatewayError(`No endpoint named '${name}' was added through the admin API.`, {
    code: 'endpoint_not_found',
  });
}
