/**
 * `chatmirror serve` on this machine as a user first starts it (HTTPS with the development certificate, the
 * development token it prints), in a child process of its own with its own cache directory, for `npm run
 * bench:serve` and the locust comparison (test/load/). Only the CHATMIRROR_* settings given here apply: a user's
 * config file or variables would change what is measured. Per-subject quotas are off, as a benchmark from one
 * subject would otherwise measure the 429s.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exited, stopChild } from './child-process.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STARTUP_TIMEOUT_MS = 120_000; // the engine loads before the server listens
const STOP_TIMEOUT_MS = 15_000; // to drain on SIGTERM before SIGKILL

export interface LocalServer {
  url: string;
  model: string;
  caFile: string;
  token: string;
  pid: number;
  /** Everything the server printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function startLocalServer(options: {
  cache: string;
  settings?: Record<string, string>;
}): Promise<LocalServer> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith('CHATMIRROR_')) env[key] = value;
  Object.assign(env, {
    CHATMIRROR_CACHE: options.cache,
    CHATMIRROR_SERVER_HOST: '127.0.0.1',
    CHATMIRROR_SERVER_PORT: '0',
    CHATMIRROR_SERVER_TLS_ENABLED: 'true',
    CHATMIRROR_SERVER_TLS_DEV_CERT_DIR: join(options.cache, 'dev-tls'),
    CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE: '0',
    CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE: '0',
    CHATMIRROR_QUOTAS_DEFAULT_CONCURRENT_REQUESTS: '0',
    CHATMIRROR_LOG_LEVEL: 'warn',
    ...options.settings,
  });
  // `node --import tsx` rather than `npx tsx`: one process, so SIGTERM reaches the server itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/cli.ts', 'serve'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => {
    log += t;
  });
  child.stderr!.setEncoding('utf8').on('data', (t: string) => {
    log += t;
  });
  const banner =
    /chatmirror: serving (\S+) at (https:\/\/\S+)\n[\s\S]*?self-signed development certificate: (\S+) [\s\S]*?export CHATMIRROR_TOKEN=(\S+)/;
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let match = log.match(banner);
  while (match === null) {
    if (exited(child))
      throw new Error(`chatmirror serve exited (${child.exitCode ?? child.signalCode}):\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`chatmirror serve printed no banner within ${STARTUP_TIMEOUT_MS / 1000} s:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    match = log.match(banner);
  }
  return {
    model: match[1]!,
    url: match[2]!,
    caFile: match[3]!,
    token: match[4]!,
    pid: child.pid!,
    log: () => log,
    stop: () => stopChild(child, STOP_TIMEOUT_MS),
  };
}
