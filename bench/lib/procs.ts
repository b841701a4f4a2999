import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { freePort } from '../../test/helpers/child-gateway.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Child processes for benchmarks: compiled JavaScript run by plain node (as in production: no loader
 * thread, no source-map support), pinned to a core when taskset exists, measured from /proc.
 */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim() || 100);
export const HAS_TASKSET = spawnSync('taskset', ['-p', String(process.pid)]).status === 0;
export const CORES = Number(spawnSync('nproc').stdout?.toString().trim() || 1);

/** Every child still running, killed if the benchmark itself stops early (Ctrl+C, a crash). */
const running = new Set<ChildProcess>();
const killAll = () => {
  for (const child of running) child.kill('SIGKILL');
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export interface Proc {
  name: string;
  pid: number;
  port: number;
  url: string;
  child: ChildProcess;
  /** SIGKILL unless told otherwise (SIGTERM lets a profiled process write its profile). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Compiles what the benchmarks run: the gateway (`npm run build` into dist/) and the servers of
 * bench/servers (into .bench-build/). Run once before any process is started.
 */
export function buildForBench(): void {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const project of ['tsconfig.build.json', 'bench/tsconfig.servers.json']) {
    const r = spawnSync(process.execPath, [tsc, '-p', project], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`building ${project} failed`);
  }
}

/** The compiled file of a source file: src/x.ts -> dist/x.js, bench/servers/x.ts -> .bench-build/bench/servers/x.js. */
function compiled(script: string): string {
  if (script.endsWith('.js')) return path.resolve(ROOT, script);
  const js = script.replace(/\.ts$/, '.js');
  if (js.startsWith('src/')) return path.join(ROOT, 'dist', js.slice('src/'.length));
  if (js.startsWith('bench/servers/')) return path.join(ROOT, '.bench-build', js);
  throw new Error(`no compiled form known for ${script}`);
}

/**
 * Starts `script` (a source path relative to the repo; its compiled form runs, see buildForBench) on a
 * free port, pinned to `cpu` if given; resolves once it accepts connections.
 */
export async function startProcess(
  name: string,
  script: string,
  env: Record<string, string>,
  cpu?: number,
  nodeArgs: string[] = [],
  /**
   * `wrapper`: a command the process runs under (valgrind…); `startTimeoutMs`: how long it may take to
   * listen; `stdout`: a file for its standard output (discarded otherwise).
   */
  options: { wrapper?: string[]; startTimeoutMs?: number; stdout?: string | undefined } = {},
): Promise<Proc> {
  const port = await freePort();
  const command = [...(options.wrapper ?? []), process.execPath, ...nodeArgs, compiled(script)];
  const [file, ...args] =
    cpu !== undefined && HAS_TASKSET ? ['taskset', '-c', String(cpu), ...command] : command;
  const child = spawn(file!, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
    },
    stdio: ['ignore', options.stdout ? openSync(options.stdout, 'w') : 'ignore', 'inherit'],
  });
  running.add(child);
  const exited = once(child, 'exit');
  void exited.then(() => running.delete(child));
  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${name} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    stop: async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null) child.kill(signal);
      await exited;
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** CPU time (user + system, all threads) the process has used, in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function statusKb(pid: number, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : Number.NaN;
}

export const rssMb = (pid: number) => statusKb(pid, 'VmRSS') / 1024;
export const peakRssMb = (pid: number) => statusKb(pid, 'VmHWM') / 1024;

/** Resets the kernel's peak-RSS mark, so that VmHWM measures one scenario. */
export function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted here: the peak then covers the process's whole life.
  }
}

/** Open file descriptors (sockets included). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Pins this process (the load generator) to a core. */
export function pinSelf(cpu: number): void {
  if (HAS_TASKSET) spawnSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)]);
}
