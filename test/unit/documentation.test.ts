import { readFileSync } from 'node:fs';
import dotenv from 'dotenv';
import { describe, expect, it } from 'vitest';
import { ENV_VARIABLES, loadConfig } from '../../src/config/load-config.js';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

describe('README and .env.example stay true to the code', () => {
  const example = read('.env.example');
  const commented = [...example.matchAll(/^#\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  const parsed = dotenv.parse(example);

  it('.env.example lists every variable the gateway reads, and nothing else', () => {
    const listed = new Set([...Object.keys(parsed), ...commented]);
    for (const name of ENV_VARIABLES) if (name !== 'PROXY_API_KEY') expect(listed, name).toContain(name);
    for (const name of listed) expect(ENV_VARIABLES, name).toContain(name);
  });

  it('.env.example sets only what a first run needs; copied to .env it overrides nothing of a CONFIG_FILE but the endpoints', () => {
    expect(Object.keys(parsed).sort()).toEqual(['API_KEY', 'ENDPOINTS']);
    // The key is left for the operator to set: a copied file cannot start with a placeholder.
    expect(parsed.API_KEY).toBe('');
    expect(() => loadConfig({ env: parsed })).toThrow(/API_KEY: no client API key is set/);
  });

  it('.env.example: every commented value is the default, except those marked as examples', () => {
    const base = { API_KEY: 'sk-client-0123456789abcdef', ENDPOINTS: parsed.ENDPOINTS };
    const defaults = { ...loadConfig({ env: base }), configFile: undefined };
    const examples: string[] = [];
    let inExample = false;
    for (const line of example.split('\n')) {
      const assignment = /^#\s*([A-Z][A-Z0-9_]+)=(.*)$/.exec(line);
      if (!assignment) {
        inExample = line.startsWith('# Example');
        continue;
      }
      const [, name, value] = assignment;
      if (inExample) {
        examples.push(name!);
        continue;
      }
      const withIt = { ...loadConfig({ env: { ...base, [name!]: value } }), configFile: undefined };
      expect(withIt, `${name}=${value} is not the default`).toEqual(defaults);
    }
    expect(examples.sort()).toEqual(
      [
        'ADMIN_API_KEY',
        'AFFINITY_HEADER',
        'AFFINITY_LOAD_FACTOR',
        'AFFINITY_USER_FIELD',
        'CONFIG_FILE',
        'FORWARD_HEADERS',
        'HEDGE_MODELS',
        'JSON_REQUEST_TIMEOUT_MS',
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
        'REDIS_URL',
      ].sort(),
    );
  });

  it('the README documents every variable', () => {
    const readme = read('README.md');
    for (const name of ENV_VARIABLES) expect(readme, name).toContain(`\`${name}\``);
  });
});
