/**
 * A throwaway redis-server (Debian's `redis-server` package) for tests: on 127.0.0.1 and a free port, nothing
 * persisted, its files in a temporary folder; stopped by `stopRedis`. The system service is never used.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const START_TIMEOUT_MS = 10_000; // 10 seconds
const PORT_ATTEMPTS = 3;

/**
 * Whether the Redis suites are skipped: only where redis-server is not installed AND this is not CI, so the
 * README's test command works on a fresh machine while CI (which installs redis-server) always runs them.
 */
export const SKIP_REDIS = (() => {
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!installed && process.env.CI !== 'true') {
    console.warn(
      'redis-server is not installed: the Redis store tests are skipped (apt-get install -y redis-server)',
    );
    return true;
  }
  return false;
})();

export interface TestRedis {
  url: string;
  process: ChildProcess;
  dir: string;
}

/** A port nothing listens on right now; redis-server cannot pick its own (`--port 0` turns TCP off). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

async function startOnce(port: number, dir: string, password?: string): Promise<ChildProcess> {
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'];
  // A test server only: a real one reads requirepass from a config file, never its command line.
  if (password !== undefined) args.push('--requirepass', password);
  const child = spawn('redis-server', [...args, '--dir', dir, '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new Error('redis-server is not installed: apt-get install -y redis-server')
          : err,
      );
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
  child.stdout!.removeAllListeners('data').resume();
  child.stderr!.removeAllListeners('data').resume();
  return child;
}

/**
 * Starts a redis-server on a free port, or on `port` (a restart in place, so clients that hold the old URL
 * reconnect to it); with `password`, every client must AUTH with it (the URL carries none).
 */
export async function startRedis(options: { port?: number; password?: string } = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'chatmirror-redis-'));
  let lastError: unknown;
  // Another process may take the port between freePort() and redis binding it: try a fresh one.
  for (let attempt = 0; attempt < (options.port === undefined ? PORT_ATTEMPTS : 1); attempt++) {
    const port = options.port ?? (await freePort());
    try {
      const child = await startOnce(port, dir, options.password);
      return { url: `redis://127.0.0.1:${port}`, process: child, dir };
    } catch (err) {
      lastError = err;
      if (err instanceof Error && err.message.includes('not installed')) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

export async function stopRedis(redis: TestRedis | undefined): Promise<void> {
  if (!redis) return;
  const { process: child } = redis;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  await rm(redis.dir, { recursive: true, force: true });
}
