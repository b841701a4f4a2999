import type { GatewayConfig } from './types.js';

export type ConfigListener = (next: GatewayConfig, previous: GatewayConfig) => void;

/**
 * The configuration in force. Services read `current` when they need a value, so a reload (SIGHUP or a
 * changed CONFIG_FILE) takes effect for the next request while requests in flight keep what they started with.
 */
export class ConfigStore {
  private value: GatewayConfig;
  private readonly listeners = new Set<ConfigListener>();

  constructor(initial: GatewayConfig) {
    this.value = initial;
  }

  get current(): GatewayConfig {
    return this.value;
  }

  replace(next: GatewayConfig): void {
    const previous = this.value;
    this.value = next;
    for (const listener of this.listeners) listener(next, previous);
  }

  onChange(listener: ConfigListener): void {
    this.listeners.add(listener);
  }
}

/** What a component needs to read the configuration in force. */
export interface ConfigSource {
  readonly current: GatewayConfig;
}
