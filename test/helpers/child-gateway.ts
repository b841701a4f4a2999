import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from './fake-upstream.js';
import type { TestBed } from './test-bed.js';

/** Helpers to run the real entry point (`src/main.ts` through tsx) as a child process. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'src', 'main.ts');
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
export const CHILD_TIMEOUT_MS = 15_000;

export { freePort };

export interface Spawned {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** Runs `node --import tsx src/main.ts` in an empty temp dir (no .env can interfere). */
export async function spawnGateway(
  bed: TestBed,
  env: Record<string, string>,
  cwd?: string,
  args: readonly string[] = [],
): Promise<Spawned> {
  return spawnSource(bed, MAIN, env, cwd, args);
}

/** Runs a TypeScript file of the repository (`src/demo/demo.ts`…) the same way. */
export async function spawnSource(
  bed: TestBed,
  file: string,
  env: Record<string, string>,
  cwd?: string,
  args: readonly string[] = [],
): Promise<Spawned> {
  const tempDir = cwd ?? (await bed.tempDir('gateway-proc-'));
  const proc = spawn(process.execPath, ['--import', TSX_LOADER, path.resolve(ROOT, file), ...args], {
    cwd: tempDir,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  bed.onCleanup(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return { proc, stdout: () => out, stderr: () => err, exit };
}

/** Resolves when the output contains `text`; rejects if the process exits first or after `ms`. */
export function waitForOutput(s: Spawned, text: string, ms = CHILD_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      s.proc.stdout!.off('data', check);
      s.proc.off('exit', onExit);
    };
    const check = () => {
      if (!s.stdout().includes(text)) return;
      cleanup();
      resolve();
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before '${text}':\n${s.stdout()}\n${s.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no '${text}' within ${ms} ms:\n${s.stdout()}\n${s.stderr()}`));
    }, ms);
    s.proc.stdout!.on('data', check);
    s.proc.once('exit', onExit);
    check();
  });
}
