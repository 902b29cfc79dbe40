/**
 * The operator commands end to end on the filesystem: `keygen` writes a key pair and JWKS with the right modes,
 * rotates, and makes API keys; `token` mints JWTs the authenticator accepts; every bad argument is a one-line
 * UsageError naming it. Also the development auth kept in the cache dir.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../../../service/config/schema.js';
import { keygen, parseTtl, token, UsageError } from '../../../service/security/auth/commands.js';
import { AuthError, createAuthenticator } from '../../../service/security/auth/credentials.js';
import { DEV_ISSUER, ensureDevAuth } from '../../../service/security/auth/dev-auth.js';
import { type JwtConfig, jwtConfig } from '../../helpers/jwt-config.js';

const root = mkdtempSync(join(tmpdir(), 'chatmirror-authcmd-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${dirCount++}`, 'keys');

/** Runs a command and returns what it printed. */
async function run(
  command: (argv: string[], out: { write(t: string): void }) => Promise<void>,
  argv: string[],
) {
  let printed = '';
  await command(argv, { write: (t) => (printed += t) });
  return printed;
}

const mode = (file: string) => statSync(file).mode & 0o777;

function jwt(jwksFile: string, overrides: Partial<JwtConfig> = {}): JwtConfig {
  return jwtConfig({ issuer: 'chatmirror', audience: 'chatmirror', jwksFile, ...overrides });
}

describe('chatmirror keygen', () => {
  it('writes private.jwk.json (0600) and a public-only jwks.json in a 0700 dir, and prints the config', async () => {
    const dir = freshDir();
    const printed = await run(keygen, ['--dir', dir, '--iss', 'https://auth.example', '--aud', 'chat-api']);
    const privateJwk = JSON.parse(readFileSync(join(dir, 'private.jwk.json'), 'utf8'));
    const jwks = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8'));

    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, 'private.jwk.json'))).toBe(0o600);
    expect(mode(join(dir, 'jwks.json'))).toBe(0o644);
    expect(privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    expect(typeof privateJwk.d).toBe('string');
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toEqual({ ...privateJwk, d: undefined });
    expect(Object.keys(jwks.keys[0])).not.toContain('d');

    expect(printed).toContain(`wrote ${join(dir, 'private.jwk.json')}`);
    expect(printed).toContain(`jwksFile: "${join(dir, 'jwks.json')}"`);
    expect(printed).toContain('issuer: "https://auth.example"');
    expect(printed).toContain('audience: "chat-api"');
    expect(printed).toContain('algorithms: [EdDSA]');
    expect(printed).toContain(
      `chatmirror token --key ${join(dir, 'private.jwk.json')} --iss https://auth.example`,
    );
  });

  it.each([
    ['ES256', { kty: 'EC', crv: 'P-256' }],
    ['RS256', { kty: 'RSA' }],
  ] as const)('--alg %s', async (alg, shape) => {
    const dir = freshDir();
    await run(keygen, ['--dir', dir, '--alg', alg]);
    const jwks = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8'));
    expect(jwks.keys[0]).toMatchObject({ ...shape, alg });
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(jwks.keys[0]).not.toHaveProperty(secret);
  });

  it('refuses to overwrite a key; --rotate publishes the new key beside the previous one', async () => {
    const dir = freshDir();
    await run(keygen, ['--dir', dir]);
    const first = JSON.parse(readFileSync(join(dir, 'private.jwk.json'), 'utf8'));
    await expect(run(keygen, ['--dir', dir])).rejects.toThrow(/^--dir: .* already holds private\.jwk\.json/);

    const printed = await run(keygen, ['--dir', dir, '--rotate']);
    const second = JSON.parse(readFileSync(join(dir, 'private.jwk.json'), 'utf8'));
    const kids = () =>
      JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')).keys.map((k: { kid: string }) => k.kid);
    expect(second.kid).not.toBe(first.kid);
    expect(kids()).toEqual([second.kid, first.kid]);
    expect(mode(join(dir, 'private.jwk.json'))).toBe(0o600);
    expect(printed).toContain(`publishes ${second.kid}, ${first.kid}`);

    const again = await run(keygen, ['--dir', dir, '--rotate']);
    expect(kids()).toHaveLength(2);
    expect(kids()[1]).toBe(second.kid);
    expect(again).toContain(`removed ${first.kid}`);
  });

  it('--api-key prints the key once and a config entry that authenticates it', async () => {
    const printed = await run(keygen, [
      '--api-key',
      'ci_bot-1',
      '--scope',
      'chat models:read',
      '--limits',
      '{"requestsPerMinute":10}',
    ]);
    const key = /^(cmk_ci_bot-1_[A-Za-z0-9_-]{43})$/m.exec(printed)![1]!;
    const entry = JSON.parse(/^ {2}- (\{.*\})$/m.exec(printed)![1]!);
    expect(entry).toEqual({
      id: 'ci_bot-1',
      hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      scopes: ['chat', 'models:read'],
      limits: { requestsPerMinute: 10 },
    });
    expect(printed.split(key)).toHaveLength(2); // printed exactly once

    const auth = await createAuthenticator({ publicRoutes: [], apiKeys: [entry] });
    expect(await auth.authenticate(`Bearer ${key}`)).toEqual({
      subject: 'ci_bot-1',
      kind: 'api_key',
      scopes: new Set(['chat', 'models:read']),
      limits: { requestsPerMinute: 10 },
    });
    const wrong = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    await expect(auth.authenticate(`Bearer ${wrong}`)).rejects.toMatchObject({ reason: 'unknown_api_key' });
  });
});

describe('chatmirror token', () => {
  it('mints a JWT the authenticator accepts, with the scopes, limits and ttl asked for', async () => {
    const dir = freshDir();
    await run(keygen, ['--dir', dir]);
    const printed = await run(token, [
      '--key',
      join(dir, 'private.jwk.json'),
      '--iss',
      'chatmirror',
      '--aud',
      'chatmirror',
      '--sub',
      'alice',
      '--scope',
      'chat models:read',
      '--scope',
      'completions',
      '--ttl',
      '15m',
      '--limits',
      '{"requestsPerMinute":10,"concurrentRequests":1}',
    ]);
    const jwtText = printed.trim();
    expect(printed).toBe(`${jwtText}\n`);
    const claims = decodeJwt(jwtText);
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(claims.nbf).toBe(claims.iat);
    expect(typeof claims.jti).toBe('string');
    const privateJwk = JSON.parse(readFileSync(join(dir, 'private.jwk.json'), 'utf8'));
    expect(decodeProtectedHeader(jwtText)).toEqual({ alg: 'EdDSA', kid: privateJwk.kid, typ: 'JWT' });

    const auth = await createAuthenticator({
      publicRoutes: [],
      apiKeys: [],
      jwt: jwt(join(dir, 'jwks.json')),
    });
    expect(await auth.authenticate(`Bearer ${jwtText}`)).toEqual({
      subject: 'alice',
      kind: 'jwt',
      scopes: new Set(['chat', 'models:read', 'completions']),
      limits: { requestsPerMinute: 10, concurrentRequests: 1 },
    });
  });

  it('parses ttl as 90s, 15m, 2h or 7d', () => {
    expect(parseTtl('90s')).toBe(90);
    expect(parseTtl('15m')).toBe(900);
    expect(parseTtl('2h')).toBe(7200);
    expect(parseTtl('7d')).toBe(604_800);
    for (const bad of ['', '15', 'm', '0s', '-5m', '1.5h', '15 m', '2w', '400d', '99999999999d']) {
      expect(() => parseTtl(bad), bad).toThrow(/^--ttl must be a duration like 90s, 15m, 2h or 7d/);
    }
  });

  it('names the bad argument in a one-line UsageError', async () => {
    const dir = freshDir();
    await run(keygen, ['--dir', dir]);
    const keyFile = join(dir, 'private.jwk.json');
    const ok = ['--key', keyFile, '--iss', 'i', '--aud', 'a', '--sub', 's', '--scope', 'chat'];
    const without = (flag: string) => {
      const i = ok.indexOf(flag);
      return [...ok.slice(0, i), ...ok.slice(i + 2)];
    };
    mkdirSync(join(root, 'not-a-key'), { recursive: true });
    writeFileSync(join(root, 'not-a-key', 'jwks.json'), '{"keys":[]}');
    const cases: [string[], RegExp][] = [
      [without('--key'), /^--key is required$/],
      [without('--iss'), /^--iss is required$/],
      [without('--aud'), /^--aud is required$/],
      [without('--sub'), /^--sub is required$/],
      [without('--scope'), /^--scope is required$/],
      [[...ok, '--ttl', '10x'], /^--ttl must be a duration/],
      [[...without('--scope'), '--scope', 'chat root'], /^--scope: unknown scope "root"/],
      [[...without('--scope'), '--scope', ' '], /^--scope must name at least one of/],
      [[...ok, '--limits', '{oops'], /^--limits must be JSON/],
      [[...ok, '--limits', '{"rpm":5}'], /^--limits may hold only requestsPerMinute/],
      [[...ok, '--limits', '{"requestsPerMinute":-1}'], /^--limits may hold only/],
      [
        [...without('--key'), '--key', join(root, 'missing.json')],
        /^--key: cannot use .*missing\.json: ENOENT/,
      ],
      [
        [...without('--key'), '--key', join(root, 'not-a-key', 'jwks.json')],
        /^--key: cannot use .* not a private JWK/,
      ],
      [[...ok, '--frobnicate'], /Unknown option '--frobnicate'/],
      [[...ok, 'stray'], /Unexpected argument 'stray'/],
      [[...ok, '--ttl'], /Option '--ttl <value>' argument missing/],
    ];
    for (const [argv, message] of cases) {
      const err = await run(token, argv).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((err as UsageError).message, argv.join(' ')).toMatch(message);
      expect((err as UsageError).message).not.toContain('\n');
      expect((err as UsageError).exitCode).toBe(2);
    }

    const keygenCases: [string[], RegExp][] = [
      [['--alg', 'HS256', '--dir', freshDir()], /^--alg must be one of EdDSA, ES256, RS256, got "HS256"/],
      [['--rotate', '--dir', freshDir()], /^--rotate: no private\.jwk\.json in --dir/],
      [['--api-key', 'bad id!'], /^--api-key: API key id must be 1-64 characters/],
      [['--api-key', 'x', '--rotate'], /^--api-key cannot be combined with --rotate/],
      [['--scope', 'chat'], /^--scope applies to --api-key only/],
      [['--api-key', 'x', '--scope', 'sudo'], /^--scope: unknown scope "sudo"/],
    ];
    for (const [argv, message] of keygenCases) {
      await expect(run(keygen, argv), argv.join(' ')).rejects.toThrow(message);
    }
  });
});

describe('ensureDevAuth', () => {
  it('keeps a dev key in a 0700 dir, reuses it across runs, and mints an all-scopes token it accepts', async () => {
    const dir = join(root, 'cache', 'dev-auth');
    const first = await ensureDevAuth(dir);
    expect(first.generated).toBe(true);
    expect(mode(dir)).toBe(0o700);
    expect(mode(first.privateKeyFile)).toBe(0o600);
    expect(first.auth.jwt).toMatchObject({
      issuer: DEV_ISSUER,
      audience: 'chatmirror',
      jwksFile: join(dir, 'jwks.json'),
      algorithms: ['EdDSA'],
    });

    const second = await ensureDevAuth(dir);
    expect(second.generated).toBe(false);
    expect(readFileSync(second.privateKeyFile, 'utf8')).toBe(readFileSync(first.privateKeyFile, 'utf8'));

    const auth = await createAuthenticator({ publicRoutes: ['/health'], apiKeys: [], ...second.auth });
    const principal = await auth.authenticate(`Bearer ${await first.mintDevToken()}`);
    expect(principal.subject).toBe('dev');
    expect([...principal.scopes]).toEqual([...SCOPES]);
    const claims = decodeJwt(await second.mintDevToken(60));
    expect(claims.exp! - claims.iat!).toBe(60);
    expect(() => second.mintDevToken(7200)).toThrow(RangeError);
  });

  it('replaces a broken or mismatched key set', async () => {
    const dir = join(root, 'cache2', 'dev-auth');
    const first = await ensureDevAuth(dir);
    writeFileSync(first.jwksFile, '{"keys":[]}');
    const second = await ensureDevAuth(dir);
    expect(second.generated).toBe(true);
    const auth = await createAuthenticator({ publicRoutes: [], apiKeys: [], ...second.auth });
    await expect(auth.authenticate(`Bearer ${await first.mintDevToken()}`)).rejects.toBeInstanceOf(AuthError);
    expect((await auth.authenticate(`Bearer ${await second.mintDevToken()}`)).subject).toBe('dev');
  });
});
