import type { ParsedConfig } from './schema.js';

/**
 * Names for the parts of the configuration. Every type here is derived from the schema's output
 * (`schema.ts`), so the schema stays the one place that says what a setting is.
 */

type DeepReadonly<T> = T extends (infer U)[]
  ? ReadonlyArray<DeepReadonly<U>>
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The configuration in force: frozen once loaded. */
export type GatewayConfig = DeepReadonly<ParsedConfig> & {
  /** Absolute path of CONFIG_FILE when one was given (watched for reloads). */
  readonly configFile: string | undefined;
};

/** Connect, first byte, idle between chunks, total, and the minimum throughput over a window (0 = off). */
export type Timeouts = ParsedConfig['routing']['timeouts'];
/** One endpoint, with its unique name and its effective timeouts (its own over the global ones). */
export type EndpointConfig = GatewayConfig['endpoints'][number];
export type HedgeConfig = GatewayConfig['routing']['hedge'];
export type AffinityConfig = NonNullable<GatewayConfig['routing']['affinity']>;
export type EjectionConfig = GatewayConfig['health']['ejection'];
