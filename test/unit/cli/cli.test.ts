/**
 * The command line as a user meets it: `--help` on every command (options and an example, exit 0), a bad flag
 * answered with one line naming it and the command's usage (exit 2), the Node.js notice, and the banner `serve`
 * prints (what a client must trust and send).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../service/cli-run.js';
import { nodeVersionNotice } from '../../../service/node-version.js';
import { howToCall } from '../../../service/serve.js';

async function cli(argv: string[], nodeVersion = '24.22.3') {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    argv,
    { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } },
    nodeVersion,
  );
  return { code, stdout, stderr };
}

// bench's --help and flags belong to service/bench (its own tests).
const COMMANDS = ['serve', 'generate', 'check', 'keygen', 'token'];

describe('chatmirror --help', () => {
  it.each([[[]], [['--help']], [['-h']], [['help']]])(
    '%j lists every command on stdout, exit 0',
    async (argv) => {
      const { code, stdout, stderr } = await cli(argv);
      expect(code).toBe(0);
      expect(stderr).toBe('');
      for (const name of [...COMMANDS, 'bench']) expect(stdout).toContain(`chatmirror ${name}`);
    },
  );

  it.each(COMMANDS)('%s --help prints its usage, options and an example, exit 0', async (name) => {
    for (const flag of ['--help', '-h']) {
      const { code, stdout, stderr } = await cli([name, flag]);
      expect(code).toBe(0);
      expect(stderr).toBe('');
      expect(stdout).toMatch(new RegExp(`^usage: chatmirror ${name} `));
      expect(stdout).toContain('options:');
      expect(stdout).toContain('-h, --help');
      expect(stdout).toMatch(new RegExp(`examples?:\\n  chatmirror ${name}`));
    }
  });

  it.each(COMMANDS)(
    '%s answers an unknown flag with one line naming it and its usage, exit 2',
    async (name) => {
      const { code, stdout, stderr } = await cli([name, '--no-such-flag']);
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(
        new RegExp(`^chatmirror ${name}: Unknown option '--no-such-flag'\\n\\nusage:\\n  chatmirror ${name}`),
      );
    },
  );

  it.each([
    [['generate', '--temperature', '5'], /--temperature must be a number in \[0, 2\], got "5"/],
    [['generate', '--chat', 'a', '--prompt', 'b'], /give --chat or --prompt, not both/],
    [['generate', 'stray'], /Unexpected argument 'stray'/],
    [['serve', '--config'], /Option '-c, --config <value>' argument missing/],
    [['token', '--key', 'k'], /--iss is required/],
  ])('%j is a usage error (exit 2) before anything loads', async (argv, message) => {
    const { code, stderr } = await cli(argv);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toContain('\nusage:\n');
  });

  it.each([
    [['generate', '--model', '/no/such/model'], 'chatmirror: --model /no/such/model does not exist\n'],
    [['serve', '--model', '/no/such/model'], 'chatmirror: engine.modelDir /no/such/model does not exist\n'],
  ])(
    '%j says the model directory does not exist (exit 1), before writing or loading anything',
    async (argv, line) => {
      const { code, stderr } = await cli(argv);
      expect(code).toBe(1);
      expect(stderr).toBe(line);
    },
  );

  it('answers an unknown command with the command list, exit 2', async () => {
    const { code, stderr } = await cli(['serv']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^chatmirror: unknown command "serv"\n\nusage: chatmirror COMMAND/);
  });
});

describe('npx chatmirror', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));

  it('runs the sources from the checkout with no build: bin points at the tsx shim, not dist/', async () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ chatmirror: 'bin/chatmirror.mjs' });
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile('npx', ['--no', 'chatmirror', 'check', '--help'], { cwd: root }, (err, out) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out }),
      ),
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: chatmirror check /);
  }, 60_000);
});

describe('the Node.js notice', () => {
  it('says nothing on a supported Node', () => {
    for (const version of ['22.12.0', '22.23.5', '24.22.3', '26.12.1'])
      expect(nodeVersionNotice(version)).toBeUndefined();
  });

  it('tells a Node 20 user it still works for development, and what the service ships on', async () => {
    const { code, stderr, stdout } = await cli(['--help'], '20.20.2');
    expect(code).toBe(0);
    expect(stdout).toContain('chatmirror serve');
    expect(stderr).toBe(
      'chatmirror: Node.js 20.20.2 is past its end of life (2026-04-30): it runs chatmirror for development; the ' +
        'service ships and is tested on Node 24 LTS (supported: ≥ 22.12)\n',
    );
  });

  it('says an older 22 is not supported', () => {
    expect(nodeVersionNotice('22.11.0')).toMatch(/not supported: chatmirror needs Node.js ≥ 22.12/);
  });
});

describe("serve's banner", () => {
  const base = { baseUrl: 'https://127.0.0.1:8443', modelId: 'tiny-llama' };

  it('with the development certificate and token: both as lines to paste, and a curl that uses both', () => {
    const text = howToCall({ ...base, caFile: '/c/dev-tls/cert.pem', devToken: 'eyJ.x.y' });
    expect(text).toContain('\n  export CHATMIRROR_CA=/c/dev-tls/cert.pem\n');
    expect(text).toContain('\n  export CHATMIRROR_TOKEN=eyJ.x.y\n');
    expect(text).toContain('curl --cacert /c/dev-tls/cert.pem https://127.0.0.1:8443/v1/chat/completions');
    expect(text).toContain('-H "Authorization: Bearer $CHATMIRROR_TOKEN"');
  });

  it('with login configured: the curl still carries the Authorization header, and says where the token comes from', () => {
    const text = howToCall(base);
    expect(text).toContain('-H "Authorization: Bearer $CHATMIRROR_TOKEN"');
    expect(text).toContain('`chatmirror token`');
    expect(text).not.toContain('export CHATMIRROR_TOKEN=');
    expect(text).not.toContain('--cacert');
  });

  it('with the chat route public: no header', () => {
    expect(howToCall({ ...base, authRequired: false })).not.toContain('Authorization');
  });
});
