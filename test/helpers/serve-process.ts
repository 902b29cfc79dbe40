/**
 * `chatmirror serve` in a child process of its own (`node --import tsx service/cli.ts serve`), so a crash shows
 * as an exit and the server's memory and event loop are its own. Only the given CHATMIRROR_* settings apply
 * (none inherited from the test's environment).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process has exited (or was killed) by now. */
  gone(): boolean;
  /** Resident set size in bytes, read from /proc/<pid>/status. */
  rss(): number;
  /** SIGKILL if still running. */
  kill(): void;
}

export function spawnServe(settings: Record<string, string>): ServeProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith('CHATMIRROR_')) env[key] = value;
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/cli.ts', 'serve'], {
    cwd: REPO_ROOT,
    env: { ...env, ...settings },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    gone,
    rss: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      if (!kb) throw new Error(`no VmRSS for ${child.pid}`);
      return Number(kb[1]) * 1024;
    },
    kill: () => {
      if (!gone()) child.kill('SIGKILL');
    },
  };
}

/** Resolves with the first match of `pattern` in the process's stdout; fails if it exits or time runs out. */
export async function waitForOutput(
  p: ServeProcess,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = p.stdout().match(pattern);
    if (match) return match;
    if (p.gone()) {
      throw new Error(
        `serve exited (${p.child.exitCode ?? p.child.signalCode}) before ${pattern}:\n${p.stderr()}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${p.stdout()}${p.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
