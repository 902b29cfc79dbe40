/**
 * README.md's client examples, run as printed against the real server (`chatmirror serve` in its own process,
 * HTTPS with its development certificate, as `npm start` runs it). The code blocks between the readme-examples
 * markers are taken from the file: a `js` or `python` block whose first line names a file (`// hello.mjs`,
 * `# hello.py`) is saved under that name, and every `sh` block runs in bash after the two `export` lines the
 * server printed, which is what a user pastes. The one change made to the text is the port: the README says
 * 8443, the test's server listens where the OS put it.
 *
 * The Python example needs the venv from test/readme/python-venv.sh (the official openai package, hash-pinned);
 * without it that block is skipped, unless CHATMIRROR_README_PY=1 says it must run (CI).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServeProcess, spawnServe, waitForOutput } from '../helpers/serve-process.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const BEGIN = '<!-- readme-examples:begin';
const END = '<!-- readme-examples:end -->';
const README_URL = 'https://127.0.0.1:8443';
const STARTUP_MS = 120_000;
const PYTHON = join(
  process.env.CHATMIRROR_CACHE || join(homedir(), '.cache', 'chatmirror'),
  'venv-readme-openai',
  'bin',
  'python',
);
const PYTHON_REQUIRED = process.env.CHATMIRROR_README_PY === '1';

interface Block {
  lang: string;
  code: string;
  /** The file a js/python block is saved as (its first line's comment). */
  file?: string;
}

/** The fenced blocks between the markers, in order. */
function exampleBlocks(markdown: string): Block[] {
  const begin = markdown.indexOf(BEGIN);
  const end = markdown.indexOf(END);
  if (begin === -1 || end === -1 || end < begin)
    throw new Error('README.md: the readme-examples markers are missing');
  const section = markdown.slice(begin, end);
  return [...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map(([, lang, code]) => {
    const named = /^(?:\/\/|#) ([\w.-]+\.(?:mjs|js|py))\n/.exec(code!);
    return { lang: lang!, code: code!, ...(named ? { file: named[1]! } : {}) };
  });
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-euo', 'pipefail', '-c', script],
      { cwd, env, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const blocks = exampleBlocks(README);
const scripts = blocks.filter((b) => b.lang === 'sh');
const usesPython = (script: Block) => /\bpython\b/.test(script.code);

let server: ServeProcess;
let baseUrl: string;
/** The two lines the banner printed for the user to paste. */
let exports: string;
let work: string;
let cache: string;
/** The developer's environment without anything that would let a block pass without the printed lines. */
const cleanEnv: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  for (const [key, value] of Object.entries(process.env)) {
    if (
      !/^(CHATMIRROR_|NODE_EXTRA_CA_CERTS$|SSL_CERT_|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|OPENAI_)/.test(key)
    )
      cleanEnv[key] = value;
  }
  if (existsSync(PYTHON)) cleanEnv.PATH = `${dirname(PYTHON)}:${process.env.PATH ?? ''}`;
  cache = mkdtempSync(join(tmpdir(), 'chatmirror-readme-cache-'));
  // Under node_modules, so `import 'openai'` in hello.mjs resolves as it does for a user in the checkout.
  mkdirSync(join(REPO_ROOT, 'node_modules', '.cache'), { recursive: true });
  work = mkdtempSync(join(REPO_ROOT, 'node_modules', '.cache', 'chatmirror-readme-'));
  server = spawnServe({ CHATMIRROR_CACHE: cache, CHATMIRROR_SERVER_PORT: '0' });
  const banner = await waitForOutput(
    server,
    /chatmirror: serving \S+ at (https:\/\/\S+)\n[\s\S]*?\n {2}(export CHATMIRROR_CA=\S+)\n[\s\S]*?\n {2}(export CHATMIRROR_TOKEN=\S+)\n/,
    STARTUP_MS,
  );
  baseUrl = banner[1]!;
  exports = `${banner[2]}\n${banner[3]}\n`;
  for (const block of blocks) {
    if (block.file !== undefined)
      writeFileSync(join(work, block.file), block.code.replaceAll(README_URL, baseUrl));
  }
}, STARTUP_MS + 10_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  rmSync(work, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
});

describe('README examples', () => {
  it('has curl, JavaScript and Python examples, each client file run by a shell block', () => {
    expect(blocks.map((b) => b.lang)).toEqual(expect.arrayContaining(['sh', 'js', 'python']));
    for (const file of blocks.filter((b) => b.file !== undefined).map((b) => b.file!)) {
      expect(
        scripts.some((s) => s.code.includes(file)),
        file,
      ).toBe(true);
    }
    expect(README).toContain(README_URL);
  });

  it.each(scripts.map((s, i) => [i + 1, s] as const))(
    'shell block %i runs as printed after the exports the server printed',
    async (_n, script) => {
      if (usesPython(script) && !existsSync(PYTHON)) {
        if (PYTHON_REQUIRED)
          throw new Error(`CHATMIRROR_README_PY=1 but ${PYTHON} is missing: bash test/readme/python-venv.sh`);
        return; // no venv here: the Python example is CI's (CHATMIRROR_README_PY=1)
      }
      const run = await bash(exports + script.code.replaceAll(README_URL, baseUrl), work, cleanEnv);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(run.stdout.trim()).not.toBe('');
      // curl exits 0 on an HTTP error; the API's errors are OpenAI error objects.
      expect(run.stdout).not.toMatch(/"error"\s*:/);
      expect(run.stderr).not.toMatch(/Error|error:/);
      if (process.env.CHATMIRROR_README_SHOW === '1')
        process.stdout.write(`${script.code}\n→ ${run.stdout}\n`);
    },
    150_000,
  );

  it("the banner's own curl line runs as printed too", async () => {
    const tryLine = /\n {2}try:\n {2}(curl [\s\S]*?)\n\n/.exec(server.stdout())?.[1];
    expect(tryLine).toBeDefined();
    const run = await bash(exports + tryLine!, work, cleanEnv);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/"object":"chat\.completion"/);
  }, 60_000);

  it('the JavaScript example fails without NODE_EXTRA_CA_CERTS, as the README says', async () => {
    const line = scripts
      .find((s) => s.code.includes('node hello.mjs'))!
      .code.replace(/NODE_EXTRA_CA_CERTS=\S+ /, '');
    const run = await bash(exports + line, work, cleanEnv);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/APIConnectionError[\s\S]*self-signed certificate/);
  }, 60_000);

  it('the Python example fails without SSL_CERT_FILE', async () => {
    if (!existsSync(PYTHON)) {
      if (PYTHON_REQUIRED) throw new Error(`CHATMIRROR_README_PY=1 but ${PYTHON} is missing`);
      return;
    }
    const line = scripts
      .find((s) => s.code.includes('python hello.py'))!
      .code.replace(/SSL_CERT_FILE=\S+ /, '');
    const run = await bash(exports + line, work, cleanEnv);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/APIConnectionError|CERTIFICATE_VERIFY_FAILED/);
  }, 60_000);

  it('the curl examples fail without the token (so a pass above means the token worked)', async () => {
    const first = scripts[0]!.code.replaceAll(README_URL, baseUrl).replaceAll('$CHATMIRROR_TOKEN', '');
    const run = await bash(exports + first, work, cleanEnv);
    expect(run.stdout).toMatch(/"code":"invalid_api_key"/);
  }, 60_000);
});
