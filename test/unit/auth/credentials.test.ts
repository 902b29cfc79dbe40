/**
 * The authenticator against the attack matrix of the security issue: every forged, stale, misdirected or
 * malformed credential is refused with its own reason, and — sent through the real plugin — gets a 401 in
 * OpenAI's error shape that carries no part of the credential. Then the happy paths: JWT scopes and limits, API
 * keys, local key rotation by kid, and a remote JWKS served over real HTTPS on 127.0.0.1.
 */
import * as nodeCrypto from 'node:crypto';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get as httpsGet, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { type FetchImplementation, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServiceConfig } from '../../../service/config/schema.js';
import { ApiError } from '../../../service/errors.js';
import {
  AuthError,
  type Authenticator,
  type AuthFailureReason,
  createAuthenticator,
  hasScope,
  MAX_TOKEN_BYTES,
  type Principal,
} from '../../../service/security/auth/credentials.js';
import {
  generateApiKey,
  generateSigningKey,
  type JsonWebKeySet,
  mintToken,
  rotateKeySet,
  type SigningKey,
  writeKeySet,
} from '../../../service/security/auth/keys.js';
import { type AuthFailure, authPlugin } from '../../../service/security/auth/plugin.js';
import { ensureDevCertificate } from '../../../service/tls/dev-cert.js';
import { type JwtConfig, jwtConfig } from '../../helpers/jwt-config.js';

// Every timingSafeEqual call is counted, to show that an unknown API key id still costs a comparison.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

type AuthConfig = ServiceConfig['auth'];

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'chatmirror';
const root = mkdtempSync(join(tmpdir(), 'chatmirror-auth-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${dirCount++}`);

function jwt(overrides: Partial<JwtConfig> = {}): JwtConfig {
  return jwtConfig({ issuer: ISSUER, audience: AUDIENCE, ...overrides });
}

function authConfig(overrides: Partial<AuthConfig> = {}): AuthConfig {
  return { publicRoutes: ['/health'], apiKeys: [], ...overrides };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs any header and payload with an Ed25519 JWK, bypassing jose's own checks (which refuse unknown crit). */
function signRaw(header: Record<string, unknown>, payload: Record<string, unknown>, jwk: JWK): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const key = createPrivateKey({ key: jwk as nodeCrypto.JsonWebKey, format: 'jwk' });
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = nowSeconds();
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'alice',
    scope: 'chat',
    iat,
    nbf: iat,
    exp: iat + 600,
    ...overrides,
  };
}

/** Replaces one character in the middle of the signature, so the decoded bytes really change. */
function flipSignature(token: string): string {
  const cut = token.lastIndexOf('.') + 20;
  return `${token.slice(0, cut)}${token[cut] === 'A' ? 'B' : 'A'}${token.slice(cut + 1)}`;
}

async function reasonOf(
  authenticator: Authenticator,
  header: string | undefined,
): Promise<AuthFailureReason> {
  const err = await authenticator.authenticate(header).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${String(header).slice(0, 60)} to be refused`).toBeInstanceOf(AuthError);
  return (err as AuthError).reason;
}

/** A small app with the real plugin, answering errors as service/app.ts does. */
async function pluginApp(
  authenticator: Authenticator,
  failures: AuthFailure[] = [],
): Promise<FastifyInstance> {
  const app = Fastify();
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    const apiError = err instanceof ApiError ? err : new ApiError('internal_error', 'internal');
    return reply.code(apiError.status).headers(apiError.headers).send(apiError.toBody());
  });
  await app.register(authPlugin, {
    authenticator,
    publicRoutes: ['/health'],
    routeScopes: { '/v1/chat/completions': 'chat' },
    onAuthFailure: (failure) => failures.push(failure),
  });
  app.get('/health', async () => ({ status: 'ok' }));
  app.post('/v1/chat/completions', async (request) => ({ subject: request.principal?.subject }));
  await app.ready();
  return app;
}

/** True when any 10-character run of `response` occurs in `secret`: a leak of some part of it. */
function leaksPartOf(response: string, secret: string): boolean {
  for (let i = 0; i + 10 <= response.length; i++) {
    if (secret.includes(response.slice(i, i + 10))) return true;
  }
  return false;
}

let keyEd: SigningKey; // EdDSA, in the JWKS
let keyRs: SigningKey; // RS256, in the JWKS: its public key is the HMAC "secret" of the confusion attack
let keyEc: SigningKey; // ES256, in the JWKS
let keyStranger: SigningKey; // EdDSA, not in the JWKS
let jwksFile: string;
let authenticator: Authenticator;
const apiKey = generateApiKey('ci-bot');

const mint = (key: SigningKey, overrides: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({
    privateJwk: key.privateJwk,
    issuer: ISSUER,
    audience: AUDIENCE,
    subject: 'alice',
    scopes: ['chat'],
    ttlSeconds: 600,
    ...overrides,
  });

beforeAll(async () => {
  [keyEd, keyRs, keyEc, keyStranger] = await Promise.all([
    generateSigningKey({ alg: 'EdDSA' }),
    generateSigningKey({ alg: 'RS256' }),
    generateSigningKey({ alg: 'ES256' }),
    generateSigningKey({ alg: 'EdDSA', kid: 'stranger' }),
  ]);
  const dir = freshDir();
  const files = await writeKeySet(dir, {
    privateJwk: keyEd.privateJwk,
    publicJwks: { keys: [keyEd, keyRs, keyEc].flatMap((k) => k.publicJwks.keys) },
  });
  jwksFile = files.jwksFile;
  authenticator = await createAuthenticator(
    authConfig({
      jwt: jwt({ jwksFile }),
      apiKeys: [{ id: 'ci-bot', hash: apiKey.hash, scopes: ['chat'], limits: { requestsPerMinute: 5 } }],
    }),
  );
});

describe('attack matrix: each refused with its reason, and a 401 through the plugin that leaks nothing', () => {
  const hmacWith = async (secret: string, kid: string) =>
    new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode(secret));
  const publicPem = (key: SigningKey) =>
    nodeCrypto
      .createPublicKey({ key: key.publicJwks.keys[0] as nodeCrypto.JsonWebKey, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
  const now = () => nowSeconds();

  const attacks: { name: string; reason: AuthFailureReason; token: () => Promise<string> | string }[] = [
    {
      name: 'alg none, empty signature',
      reason: 'algorithm_not_allowed',
      token: () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims({ scope: 'admin' }))}.`,
    },
    {
      name: 'alg "None" with the kid of a real key',
      reason: 'algorithm_not_allowed',
      token: () => `${b64({ alg: 'None', kid: keyEd.privateJwk.kid })}.${b64(claims())}.`,
    },
    {
      name: 'HS256 signed with the RSA public key (PEM) as the HMAC secret',
      reason: 'algorithm_not_allowed',
      token: () => hmacWith(publicPem(keyRs), keyRs.privateJwk.kid!),
    },
    {
      name: 'HS256 signed with the EC public key (JWK JSON) as the HMAC secret',
      reason: 'algorithm_not_allowed',
      token: () => hmacWith(JSON.stringify(keyEc.publicJwks.keys[0]), keyEc.privateJwk.kid!),
    },
    {
      name: 'expired',
      reason: 'expired',
      token: () => mint(keyEd, { now: new Date(Date.now() - 700_000), ttlSeconds: 600 }),
    },
    {
      name: 'nbf in the future',
      reason: 'not_yet_valid',
      token: () =>
        signRaw({ alg: 'EdDSA', kid: keyEd.privateJwk.kid }, claims({ nbf: now() + 600 }), keyEd.privateJwk),
    },
    {
      name: 'iat in the future',
      reason: 'not_yet_valid',
      token: () => mint(keyEd, { now: new Date(Date.now() + 600_000) }),
    },
    {
      name: 'older than maxTokenAgeSeconds though not expired',
      reason: 'too_old',
      token: () => mint(keyEd, { now: new Date(Date.now() - 7_200_000), ttlSeconds: 8000 }),
    },
    { name: 'wrong iss', reason: 'wrong_issuer', token: () => mint(keyEd, { issuer: 'https://evil.test' }) },
    { name: 'wrong aud', reason: 'wrong_audience', token: () => mint(keyEd, { audience: 'other-service' }) },
    { name: 'unknown kid', reason: 'unknown_key', token: () => mint(keyStranger) },
    {
      name: 'unknown crit header',
      reason: 'unsupported_header',
      token: () =>
        signRaw(
          { alg: 'EdDSA', kid: keyEd.privateJwk.kid, crit: ['x-chatmirror-ext'], 'x-chatmirror-ext': true },
          claims(),
          keyEd.privateJwk,
        ),
    },
    { name: 'bad signature', reason: 'bad_signature', token: async () => flipSignature(await mint(keyEd)) },
    {
      name: 'payload swapped for admin, signature kept',
      reason: 'bad_signature',
      token: async () => {
        const [header, , signature] = (await mint(keyEd)).split('.');
        return `${header}.${b64(claims({ scope: 'admin' }))}.${signature}`;
      },
    },
    {
      name: 'signed by a key the JWKS does not hold, under a real kid',
      reason: 'bad_signature',
      token: () =>
        mint({ ...keyStranger, privateJwk: { ...keyStranger.privateJwk, kid: keyEd.privateJwk.kid } }),
    },
    {
      name: 'required claim (exp) missing',
      reason: 'claims',
      token: () =>
        signRaw({ alg: 'EdDSA', kid: keyEd.privateJwk.kid }, claims({ exp: undefined }), keyEd.privateJwk),
    },
    {
      name: 'truncated inside the signature',
      reason: 'bad_signature',
      token: async () => (await mint(keyEd)).slice(0, -10),
    },
    {
      name: 'truncated before the signature',
      reason: 'malformed',
      token: async () => {
        const t = await mint(keyEd);
        return t.slice(0, t.lastIndexOf('.') - 5);
      },
    },
    { name: 'garbage', reason: 'malformed', token: () => 'not-a-token-at-all' },
    { name: 'garbage in three parts', reason: 'malformed', token: () => 'Zm9v.YmFy.YmF6' },
    {
      name: 'non-JSON header',
      reason: 'malformed',
      token: () => `${Buffer.from('{alg').toString('base64url')}.e30.AA`,
    },
    { name: 'characters outside base64url', reason: 'malformed', token: () => 'a.b.c"<script>' },
    { name: 'an API key of the wrong shape', reason: 'malformed', token: () => 'cmk_ci-bot_short' },
    {
      name: 'an API key with a wrong secret',
      reason: 'unknown_api_key',
      token: () => `cmk_ci-bot_${'A'.repeat(43)}`,
    },
    {
      name: 'an API key with an unknown id',
      reason: 'unknown_api_key',
      token: () => generateApiKey('nobody').key,
    },
    {
      name: 'a 100 KB token',
      reason: 'too_large',
      token: async () => (await mint(keyEd)).padEnd(100 * 1024, 'A'),
    },
    {
      name: 'one byte over 8 KiB',
      reason: 'too_large',
      token: () => `${'A'.repeat(MAX_TOKEN_BYTES - 4)}.b.c.`,
    },
  ];

  let app: FastifyInstance;
  const failures: AuthFailure[] = [];
  beforeAll(async () => {
    app = await pluginApp(authenticator, failures);
  });
  afterAll(() => app.close());

  it.each(attacks)('$name → $reason', async ({ token: make, reason }) => {
    const token = await make();
    expect(await reasonOf(authenticator, `Bearer ${token}`)).toBe(reason);

    failures.length = 0;
    const response = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload: '{}',
    });
    expect(response.statusCode).toBe(401);
    expect(failures).toEqual([reason]);
    expect(response.json()).toEqual({
      error: {
        message: 'Invalid authentication credentials.',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    expect(response.headers['www-authenticate']).toBe('Bearer realm="chatmirror", error="invalid_token"');
    expect(leaksPartOf(JSON.stringify(response.headers) + response.body, token)).toBe(false);
  });

  it('a token in the query string is refused even when valid, and never used', async () => {
    const token = await mint(keyEd);
    expect((await authenticator.authenticate(`Bearer ${token}`)).subject).toBe('alice');
    for (const param of ['access_token', 'api_key', 'token']) {
      failures.length = 0;
      const response = await app.inject({
        method: 'POST',
        url: `/v1/chat/completions?${param}=${token}`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: '{}',
      });
      expect(response.statusCode).toBe(401);
      expect(failures).toEqual(['query_token']);
      expect(response.json().error.code).toBe('invalid_api_key');
      expect(leaksPartOf(JSON.stringify(response.headers) + response.body, token)).toBe(false);
    }
  });

  it('refuses a missing, empty or non-Bearer Authorization header', async () => {
    expect(await reasonOf(authenticator, undefined)).toBe('missing');
    expect(await reasonOf(authenticator, '')).toBe('missing');
    expect(await reasonOf(authenticator, 'Bearer')).toBe('malformed');
    expect(await reasonOf(authenticator, 'Bearer ')).toBe('malformed');
    expect(await reasonOf(authenticator, 'Bearer a b')).toBe('malformed');
    expect(await reasonOf(authenticator, `Basic ${Buffer.from('alice:pw').toString('base64')}`)).toBe(
      'wrong_scheme',
    );
    expect(await reasonOf(authenticator, await mint(keyEd))).toBe('wrong_scheme'); // the token without a scheme
  });

  it('an unknown API key id costs the same hash comparison as a known one', async () => {
    const timingSafeEqual = vi.mocked(nodeCrypto.timingSafeEqual);
    timingSafeEqual.mockClear();
    await reasonOf(authenticator, `Bearer ${generateApiKey('nobody').key}`);
    await reasonOf(authenticator, `Bearer cmk_ci-bot_${'A'.repeat(43)}`);
    expect(timingSafeEqual).toHaveBeenCalledTimes(2);
    expect(timingSafeEqual.mock.calls.map(([a, b]) => [a.byteLength, b.byteLength])).toEqual([
      [32, 32],
      [32, 32],
    ]);
  });
});

describe('accepted credentials', () => {
  it('a JWT becomes a principal with its subject and scopes, under any allowed algorithm', async () => {
    for (const key of [keyEd, keyRs, keyEc]) {
      const principal = await authenticator.authenticate(
        `Bearer ${await mint(key, { scopes: ['chat', 'models:read'] })}`,
      );
      expect(principal).toEqual({ subject: 'alice', kind: 'jwt', scopes: new Set(['chat', 'models:read']) });
    }
    // The scheme is case-insensitive.
    expect((await authenticator.authenticate(`bearer ${await mint(keyEd)}`)).subject).toBe('alice');
  });

  it('accepts scopes as an array and ignores scopes this server does not know', async () => {
    const token = signRaw(
      { alg: 'EdDSA', kid: keyEd.privateJwk.kid },
      claims({ scope: ['openid', 'metrics:read', 'chat'] }),
      keyEd.privateJwk,
    );
    const principal = await authenticator.authenticate(`Bearer ${token}`);
    expect([...principal.scopes].sort()).toEqual(['chat', 'metrics:read']);
    const none = signRaw(
      { alg: 'EdDSA', kid: keyEd.privateJwk.kid },
      claims({ scope: undefined }),
      keyEd.privateJwk,
    );
    expect((await authenticator.authenticate(`Bearer ${none}`)).scopes.size).toBe(0);
  });

  it('refuses a malformed scopes claim or sub', async () => {
    for (const bad of [{ scope: 42 }, { scope: ['chat', 7] }, { sub: 12 }, { sub: '' }]) {
      const token = signRaw({ alg: 'EdDSA', kid: keyEd.privateJwk.kid }, claims(bad), keyEd.privateJwk);
      expect(await reasonOf(authenticator, `Bearer ${token}`)).toBe('claims');
    }
  });

  it('parses and validates the limits claim', async () => {
    const limits = { requestsPerMinute: 10, tokensPerMinute: 5000, concurrentRequests: 2 };
    const principal = await authenticator.authenticate(`Bearer ${await mint(keyEd, { limits })}`);
    expect(principal.limits).toEqual(limits);
    expect(Object.isFrozen(principal.limits)).toBe(true);
    for (const bad of [{ requestsPerMinute: -1 }, { requestsPerMinute: 1.5 }, { rpm: 3 }, 'fast', [1]]) {
      const token = signRaw(
        { alg: 'EdDSA', kid: keyEd.privateJwk.kid },
        claims({ chatmirror_limits: bad }),
        keyEd.privateJwk,
      );
      expect(await reasonOf(authenticator, `Bearer ${token}`)).toBe('claims');
    }
  });

  it('tolerates clock skew up to clockToleranceSeconds', async () => {
    const skewed = signRaw(
      { alg: 'EdDSA', kid: keyEd.privateJwk.kid },
      claims({ iat: nowSeconds() + 20, nbf: nowSeconds() + 20, exp: nowSeconds() - 20 }),
      keyEd.privateJwk,
    );
    expect((await authenticator.authenticate(`Bearer ${skewed}`)).subject).toBe('alice');
  });

  it('an API key becomes a principal with its id, scopes and limits from the config', async () => {
    expect(await authenticator.authenticate(`Bearer ${apiKey.key}`)).toEqual({
      subject: 'ci-bot',
      kind: 'api_key',
      scopes: new Set(['chat']),
      limits: { requestsPerMinute: 5 },
    });
  });

  it('admin implies every scope', () => {
    const principal = (scopes: string[]): Principal => ({
      subject: 's',
      kind: 'jwt',
      scopes: new Set(scopes) as Principal['scopes'],
    });
    for (const scope of ['chat', 'completions', 'models:read', 'metrics:read', 'admin'] as const) {
      expect(hasScope(principal(['admin']), scope)).toBe(true);
    }
    expect(hasScope(principal(['chat']), 'chat')).toBe(true);
    expect(hasScope(principal(['chat']), 'metrics:read')).toBe(false);
    expect(hasScope(principal(['chat']), 'admin')).toBe(false);
  });

  it('with only API keys configured, a JWT is refused as jwt_not_configured', async () => {
    const keysOnly = await createAuthenticator(
      authConfig({ apiKeys: [{ id: 'ci-bot', hash: apiKey.hash, scopes: ['chat'] }] }),
    );
    expect(await reasonOf(keysOnly, `Bearer ${await mint(keyEd)}`)).toBe('jwt_not_configured');
    expect((await keysOnly.authenticate(`Bearer ${apiKey.key}`)).subject).toBe('ci-bot');
  });
});

describe('configuration refused at start-up', () => {
  it('names the setting at fault', async () => {
    const cases: [Partial<AuthConfig>, RegExp][] = [
      [{ jwt: jwt() }, /exactly one of auth\.jwt\.jwksFile and auth\.jwt\.jwksUrl/],
      [
        { jwt: jwt({ jwksFile, jwksUrl: 'https://idp.test/jwks.json' }) },
        /exactly one of auth\.jwt\.jwksFile/,
      ],
      [{ jwt: jwt({ jwksUrl: 'http://idp.test/jwks.json' }) }, /auth\.jwt\.jwksUrl: must be an https/],
      [{ jwt: jwt({ jwksFile: join(root, 'missing.json') }) }, /auth\.jwt\.jwksFile: cannot read/],
      [
        { jwt: jwt({ jwksFile, algorithms: ['RS256', 'HS256'] as JwtConfig['algorithms'] }) },
        /auth\.jwt\.algorithms: HS256 can never be accepted/,
      ],
      [
        {
          apiKeys: [
            { id: 'a', hash: apiKey.hash, scopes: ['chat'] },
            { id: 'a', hash: apiKey.hash, scopes: ['chat'] },
          ],
        },
        /auth\.apiKeys\[1\]\.id: duplicate id "a"/,
      ],
    ];
    for (const [config, message] of cases) {
      await expect(createAuthenticator(authConfig(config))).rejects.toThrow(message);
    }
  });

  it('refuses a JWKS file that holds a private key', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'leaky.json');
    writeFileSync(file, JSON.stringify({ keys: [keyEd.privateJwk] }));
    await expect(createAuthenticator(authConfig({ jwt: jwt({ jwksFile: file }) }))).rejects.toThrow(
      /holds private key material/,
    );
  });
});

describe('key rotation by kid (local JWKS)', () => {
  it('old and new keys verify after a rotation; a key dropped by the next one no longer does', async () => {
    const dir = freshDir();
    const first = await generateSigningKey({ alg: 'EdDSA' });
    const files = await writeKeySet(dir, first);
    const auth = await createAuthenticator(authConfig({ jwt: jwt({ jwksFile: files.jwksFile }) }));
    const token1 = await mint(first);
    expect((await auth.authenticate(`Bearer ${token1}`)).subject).toBe('alice');

    const rotated = await rotateKeySet(dir);
    expect(rotated.kept).toEqual([first.privateJwk.kid]);
    const second: SigningKey = {
      privateJwk: JSON.parse(readFileSync(files.privateKeyFile, 'utf8')),
      publicJwks: { keys: [] },
    };
    const token2 = await mint(second);
    // Until reload() the service does not know key 2.
    expect(await reasonOf(auth, `Bearer ${token2}`)).toBe('unknown_key');
    await auth.reload();
    expect((await auth.authenticate(`Bearer ${token1}`)).subject).toBe('alice');
    expect((await auth.authenticate(`Bearer ${token2}`)).subject).toBe('alice');

    const again = await rotateKeySet(dir);
    expect(again.removed).toEqual([first.privateJwk.kid]);
    await auth.reload();
    expect(await reasonOf(auth, `Bearer ${token1}`)).toBe('unknown_key');
    expect((await auth.authenticate(`Bearer ${token2}`)).subject).toBe('alice');
  });

  it('a broken jwks.json on reload keeps the keys in use', async () => {
    const dir = freshDir();
    const key = await generateSigningKey({ alg: 'EdDSA' });
    const files = await writeKeySet(dir, key);
    const auth = await createAuthenticator(authConfig({ jwt: jwt({ jwksFile: files.jwksFile }) }));
    writeFileSync(files.jwksFile, '{"keys": [');
    await expect(auth.reload()).rejects.toThrow(/auth\.jwt\.jwksFile/);
    expect((await auth.authenticate(`Bearer ${await mint(key)}`)).subject).toBe('alice');
  });
});

describe('remote JWKS over HTTPS on 127.0.0.1', () => {
  // jose itself would fetch plain http too; the service refuses it (auth.jwt.jwksUrl must be https), so the test
  // serves real HTTPS with the development certificate and a fetch that trusts exactly that certificate.
  let server: Server;
  let url: string;
  let ca: Buffer;
  let served: JsonWebKeySet = { keys: [] };
  let status = 200;
  let fetches = 0;

  const pinnedFetch: FetchImplementation = (target, init) =>
    new Promise<Response>((resolve, reject) => {
      const request = httpsGet(
        target,
        { ca, headers: Object.fromEntries(init.headers), signal: init.signal },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve(new Response(body, { status: res.statusCode ?? 500 })));
          res.on('error', reject);
        },
      );
      request.on('error', reject);
    });

  beforeAll(async () => {
    const cert = await ensureDevCertificate(join(freshDir(), 'tls'));
    ca = readFileSync(cert.certFile);
    server = createServer({ cert: ca, key: readFileSync(cert.keyFile) }, (req, res) => {
      fetches++;
      if (req.url !== '/.well-known/jwks.json' || status !== 200) {
        res.writeHead(req.url === '/.well-known/jwks.json' ? status : 404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fetches once, caches, refetches for a new kid, and refuses a key that was removed', async () => {
    const [k1, k2] = await Promise.all([
      generateSigningKey({ alg: 'EdDSA' }),
      generateSigningKey({ alg: 'ES256' }),
    ]);
    served = k1.publicJwks;
    status = 200;
    fetches = 0;
    const auth = await createAuthenticator(authConfig({ jwt: jwt({ jwksUrl: url }) }), {
      fetch: pinnedFetch,
      jwksCooldownMs: 0,
    });
    const token1 = await mint(k1);
    for (let i = 0; i < 3; i++) expect((await auth.authenticate(`Bearer ${token1}`)).subject).toBe('alice');
    expect(fetches).toBe(1);

    // Rotation at the issuer: key 2 published beside key 1. An unknown kid triggers one refetch.
    served = { keys: [...k2.publicJwks.keys, ...k1.publicJwks.keys] };
    const token2 = await mint(k2);
    expect((await auth.authenticate(`Bearer ${token2}`)).subject).toBe('alice');
    expect((await auth.authenticate(`Bearer ${token1}`)).subject).toBe('alice');
    expect(fetches).toBe(2);

    // Key 1 retired at the issuer; reload() picks that up at once.
    served = k2.publicJwks;
    await auth.reload();
    expect(await reasonOf(auth, `Bearer ${token1}`)).toBe('unknown_key');
    expect((await auth.authenticate(`Bearer ${token2}`)).subject).toBe('alice');
  });

  it('refuses with jwks_unavailable when the JWKS cannot be fetched or its certificate is not trusted', async () => {
    const key = await generateSigningKey({ alg: 'EdDSA' });
    served = key.publicJwks;
    status = 500;
    const broken = await createAuthenticator(authConfig({ jwt: jwt({ jwksUrl: url }) }), {
      fetch: pinnedFetch,
    });
    expect(await reasonOf(broken, `Bearer ${await mint(key)}`)).toBe('jwks_unavailable');

    status = 200;
    // The global fetch does not trust the self-signed certificate: TLS verification is real.
    const untrusted = await createAuthenticator(authConfig({ jwt: jwt({ jwksUrl: url }) }));
    expect(await reasonOf(untrusted, `Bearer ${await mint(key)}`)).toBe('jwks_unavailable');
  });
});
