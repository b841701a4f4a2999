import { configLines, describeConfig } from '../config/describe-config.js';
import { ConfigError, loadConfigFromProcess } from '../config/load-config.js';

/**
 * `npm run config:check` / `node dist/main.js --check-config [--json]`: validates the configuration the
 * gateway would start with (environment, `.env`, CONFIG_FILE) and prints every setting with its source,
 * keys redacted, and the warnings, without starting. Returns the exit code: 0 valid, 1 not.
 */
export function checkConfig(args: readonly string[], out = console.log, err = console.error): number {
  const json = args.includes('--json');
  try {
    const view = describeConfig(loadConfigFromProcess());
    if (json) {
      out(JSON.stringify({ valid: true, ...view }, null, 2));
      return 0;
    }
    out('The configuration is valid.');
    out(`  config file: ${view.files.configFile ?? '(none: CONFIG_FILE is not set)'}`);
    out(`  .env file:   ${view.files.envFile ?? '(none in this directory)'}`);
    out('');
    for (const line of configLines(view)) out(`  ${line}`);
    if (view.warnings.length > 0) {
      out('');
      out('Warnings:');
      for (const w of view.warnings) out(`  - ${w}`);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (json) {
      out(JSON.stringify({ valid: false, problems: e.problems, warnings: e.warnings }, null, 2));
      return 1;
    }
    err(problemReport(e));
    return 1;
  }
}

/** A rejected configuration, for a person: the problems, then the warnings that may explain them. */
export function problemReport(e: ConfigError): string {
  const warnings =
    e.warnings.length > 0 ? `\n\nWarnings:\n${e.warnings.map((w) => `  - ${w}`).join('\n')}` : '';
  return `${e.message}${warnings}\n\nSee README.md (Configuration) and .env.example.`;
}
