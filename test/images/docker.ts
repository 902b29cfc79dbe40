/**
 * Helpers for the container image tests: the docker CLI, polling, and HTTPS requests that trust one CA. These
 * tests need what images/build.sh leaves behind (dockerd, the registry on loopback, images/digests.json), so they
 * run only when CHATMIRROR_IMAGE_TESTS is set; `npm test` skips them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:https';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const IMAGE_TESTS = Boolean(process.env.CHATMIRROR_IMAGE_TESTS);
/** Shown as the name of every skipped suite. */
export const SKIPPED = IMAGE_TESTS
  ? ''
  : ' [skipped: run `bash images/build.sh`, then set CHATMIRROR_IMAGE_TESTS=1]';

/** Debian's CLI (matching its daemon) when installed; `$DOCKER` wins. */
export const DOCKER = process.env.DOCKER || (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');

/** stdout (with `withStderr`, stdout then stderr: what `docker logs` relays from the container's stderr). */
export async function docker(
  args: string[],
  options: { input?: string; withStderr?: boolean } = {},
): Promise<string> {
  if (options.input === undefined) {
    const { stdout, stderr } = await run(DOCKER, args, { maxBuffer: 16 * 1024 * 1024 });
    return (options.withStderr === true ? `${stdout}${stderr}` : stdout).trim();
  }
  return new Promise((resolve, reject) => {
    const child = execFile(DOCKER, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve(stdout.trim()),
    );
    child.stdin!.end(options.input);
  });
}

/** `docker …` expected to fail: its exit code and what it printed. */
export async function dockerFails(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const stdout = await docker(args);
    throw new Error(`docker ${args.join(' ')} succeeded, printing ${stdout}`);
  } catch (err) {
    const { code, stdout, stderr } = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof code !== 'number') throw err;
    return { code, output: `${stdout ?? ''}${stderr ?? ''}` };
  }
}

export async function inspect<T>(name: string, format: string): Promise<T> {
  return JSON.parse(await docker(['inspect', '--format', `{{json ${format}}}`, name])) as T;
}

/** Polls `probe` every 200 ms until it returns a value, or throws naming `what` after `timeoutMs`. */
export { until as waitFor } from '../helpers/poll.js';

export interface HttpsResponse {
  status: number;
  body: string;
}

/** One HTTPS request trusting only `ca` (no system roots, no skipping verification). */
export function httpsRequest(
  url: string,
  options: { ca: string | Buffer; method?: string; headers?: Record<string, string>; body?: unknown },
): Promise<HttpsResponse> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        ca: options.ca,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `chatmirror check` in the image (through the module, so it works whatever cli.ts dispatches). */
export function checkArgs(image: string, checkArgv: string[]): string[] {
  const script =
    "import('/app/service/check.js').then((m) => m.check(process.argv.slice(1)))" +
    '.catch((e) => { process.stderr.write(e.message + "\\n"); process.exit(e.exitCode ?? 1); })';
  return ['--entrypoint', 'node', image, '-e', script, '--', ...checkArgv];
}
