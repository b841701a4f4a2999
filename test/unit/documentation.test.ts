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

  it('.env.example loads as it is, and its values are the defaults', () => {
    const fromExample = loadConfig({ env: parsed });
    const defaults = loadConfig({ env: { API_KEY: parsed.API_KEY, ENDPOINTS: parsed.ENDPOINTS } });
    expect({ ...fromExample, configFile: undefined }).toEqual({ ...defaults, configFile: undefined });
  });

  it('the README documents every variable', () => {
    const readme = read('README.md');
    for (const name of ENV_VARIABLES) expect(readme, name).toContain(`\`${name}\``);
  });
});
