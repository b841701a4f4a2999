import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`); CHROMIUM_PATH points elsewhere. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Whether browser tests can run. Without Chromium they skip with a message, except in CI (CI=true or
 * REQUIRE_BROWSER=1), where a missing browser fails the run instead.
 */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.REQUIRE_BROWSER === '1' || process.env.CI === 'true')
    throw new Error(
      `Chromium is required (CI or REQUIRE_BROWSER=1) but ${CHROMIUM_PATH} is missing: apt-get install -y chromium`,
    );
  console.warn(
    `skipping browser tests: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`,
  );
  return false;
}

/** Headless Chromium as this machine allows it: no sandbox (root), no GPU, no calls to Google. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/** Where tests save their screenshots (gitignored). */
export async function screenshotPath(name: string): Promise<string> {
  const dir = path.resolve('test-results', 'screenshots');
  await mkdir(dir, { recursive: true });
  return path.join(dir, name);
}
