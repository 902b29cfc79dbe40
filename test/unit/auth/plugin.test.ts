/**
 * authPlugin in a small real Fastify app: a public route, a chat-scoped one and a metrics-scoped one. 401 with
 * WWW-Authenticate, 403 with the missing scope, 200 with a principal; tokens in the URL refused; unknown routes
 * hidden from anonymous callers; a 100 KB token answered without a 5xx and without echoing it, both by Node's
 * header limit and, when that limit is raised, by the plugin's own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../../service/config/schema.js';
import { ApiError } from '../../../service/errors.js';
import { type Authenticator, createAuthenticator } from '../../../service/security/auth/credentials.js';
import {
  generateApiKey,
  generateSigningKey,
  mintToken,
  type SigningKey,
  writeKeySet,
} from '../../../service/security/auth/keys.js';
import {
  type AuthFailure,
  type AuthPluginOptions,
  authPlugin,
} from '../../../service/security/auth/plugin.js';
import { jwtConfig } from '../../helpers/jwt-config.js';

const ISSUER = 'chatmirror-test';
const AUDIENCE = 'chatmirror';
const root = mkdtempSync(join(tmpdir(), 'chatmirror-authplugin-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let key: SigningKey;
let authenticator: Authenticator;
const apiKey = generateApiKey('metrics-scraper');

beforeAll(async () => {
  key = await generateSigningKey({ alg: 'EdDSA' });
  const { jwksFile } = await writeKeySet(root, key);
  authenticator = await createAuthenticator({
    publicRoutes: ['/health'],
    apiKeys: [{ id: 'metrics-scraper', hash: apiKey.hash, scopes: ['metrics:read'] }],
    jwt: jwtConfig({ issuer: ISSUER, audience: AUDIENCE, algorithms: ['EdDSA'], jwksFile }),
  });
});

const tokenWith = (...scopes: Scope[]) =>
  mintToken({
    privateJwk: key.privateJwk,
    issuer: ISSUER,
    audience: AUDIENCE,
    subject: 'alice',
    scopes,
    ttlSeconds: 600,
  });

const ROUTE_SCOPES = { '/v1/chat/completions': 'chat', '/metrics': 'metrics:read' } as const;

interface Built {
  app: FastifyInstance;
  failures: AuthFailure[];
  logs: string[];
}

/** The plugin, three routes, and the error and not-found handling service/app.ts has. */
async function build(
  serverOptions: FastifyServerOptions = {},
  pluginOptions: Partial<AuthPluginOptions> = {},
): Promise<Built> {
  const failures: AuthFailure[] = [];
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const app = Fastify({ ...serverOptions, logger: { level: 'info', stream } });
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    const apiError = err instanceof ApiError ? err : new ApiError('internal_error', 'internal');
    return reply.code(apiError.status).headers(apiError.headers).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError('unknown_url', `Unknown request URL: ${request.method} ${request.url}.`);
    return reply.code(error.status).send(error.toBody());
  });
  await app.register(authPlugin, {
    authenticator,
    publicRoutes: ['/health'],
    routeScopes: ROUTE_SCOPES,
    onAuthFailure: (failure) => failures.push(failure),
    ...pluginOptions,
  });
  app.get('/health', async (request) => ({ status: 'ok', principal: request.principal }));
  app.post('/v1/chat/completions', async (request) => ({
    subject: request.principal?.subject,
    kind: request.principal?.kind,
  }));
  app.get('/metrics', async (request) => ({ subject: request.principal?.subject }));
  await app.ready();
  return { app, failures, logs };
}

let built: Built;
beforeAll(async () => {
  built = await build();
});
afterAll(() => built.app.close());
afterEach(() => {
  built.failures.length = 0;
});

const chat = (headers: Record<string, string> = {}, url = '/v1/chat/completions') =>
  built.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: '{}',
  });

describe('authPlugin', () => {
  it('serves a public route without credentials', async () => {
    const response = await built.app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', principal: null });
    expect(built.failures).toEqual([]);
  });

  it('401 without credentials: OpenAI shape, a challenge without an error attribute (RFC 6750 §3.1)', async () => {
    const response = await chat();
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="chatmirror"');
    expect(response.json()).toEqual({
      error: {
        message: 'Missing credentials: send an API key or token as "Authorization: Bearer <credential>".',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    expect(built.failures).toEqual(['missing']);
  });

  it('401 with error="invalid_token" for an invalid credential', async () => {
    const response = await chat({ authorization: `Bearer cmk_metrics-scraper_${'x'.repeat(43)}` });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="chatmirror", error="invalid_token"');
    expect(response.json().error.message).toBe('Invalid authentication credentials.');
    expect(built.failures).toEqual(['unknown_api_key']);
  });

  it('403 with the missing scope when the credential is valid but not allowed there', async () => {
    const response = await built.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${await tokenWith('chat')}` },
    });
    expect(response.statusCode).toBe(403);
    expect(response.headers['www-authenticate']).toBe(
      'Bearer realm="chatmirror", error="insufficient_scope", scope="metrics:read"',
    );
    expect(response.json()).toEqual({
      error: {
        message: 'This credential lacks the "metrics:read" scope that /metrics requires.',
        type: 'permission_error',
        param: null,
        code: 'insufficient_scope',
      },
    });
    expect(built.failures).toEqual(['insufficient_scope']);

    const apiKeyOnChat = await chat({ authorization: `Bearer ${apiKey.key}` });
    expect(apiKeyOnChat.statusCode).toBe(403);
    expect(apiKeyOnChat.headers['www-authenticate']).toContain('scope="chat"');
  });

  it('200 with request.principal when the scope matches; admin passes everywhere', async () => {
    const response = await chat({ authorization: `Bearer ${await tokenWith('chat')}` });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ subject: 'alice', kind: 'jwt' });

    const scraper = await built.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${apiKey.key}` },
    });
    expect(scraper.json()).toEqual({ subject: 'metrics-scraper' });

    const admin = await tokenWith('admin');
    expect((await chat({ authorization: `Bearer ${admin}` })).statusCode).toBe(200);
    const metrics = await built.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(metrics.statusCode).toBe(200);
    expect(built.failures).toEqual([]);
  });

  it('refuses a credential in the query string even when valid, on any route', async () => {
    const token = await tokenWith('chat');
    for (const url of [
      `/v1/chat/completions?access_token=${token}`,
      `/v1/chat/completions?api_key=${apiKey.key}`,
      `/v1/chat/completions?stream=1&token=${token}`,
      `/v1/chat/completions?ACCESS_TOKEN=${token}`,
      `/health?access_token=${token}`,
    ]) {
      const response = await built.app.inject({
        method: url.startsWith('/health') ? 'GET' : 'POST',
        url,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: url.startsWith('/health') ? undefined : '{}',
      });
      expect(response.statusCode, url).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="chatmirror", error="invalid_request"');
      expect(response.json().error).toEqual({
        message: 'Credentials must be sent in the Authorization header, not in the URL.',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      });
      expect(response.body).not.toContain(token.slice(0, 20));
    }
    expect(built.failures).toEqual(Array(5).fill('query_token'));
  });

  it('answers 401, not 404 or 405, to anonymous callers on unknown routes; 404 once authenticated', async () => {
    for (const [method, url] of [
      ['GET', '/v1/secret-admin-route'],
      ['POST', '/health'],
      ['GET', '/v1/chat/completions'],
    ] as const) {
      const response = await built.app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(401);
    }
    const response = await built.app.inject({
      method: 'GET',
      url: '/v1/secret-admin-route',
      headers: { authorization: `Bearer ${await tokenWith('chat')}` },
    });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('unknown_url');
  });

  it('never logs the credential', async () => {
    const token = await tokenWith('chat');
    built.logs.length = 0;
    await chat({ authorization: `Bearer ${token}x` });
    await chat({ authorization: `Bearer ${apiKey.key}` });
    const logs = built.logs.join('');
    expect(logs).toContain('"authFailure":"bad_signature"');
    expect(logs).toContain('"authFailure":"insufficient_scope"');
    expect(logs).not.toContain(token.split('.')[2]!.slice(0, 16));
    expect(logs).not.toContain(apiKey.key.slice(-20));
  });

  it('registration refuses a route that is neither public nor scoped', async () => {
    const app = Fastify();
    await app.register(authPlugin, { authenticator, publicRoutes: ['/health'], routeScopes: ROUTE_SCOPES });
    expect(() => app.get('/v1/forgotten', async () => 'x')).toThrow(
      /route GET \/v1\/forgotten is neither in auth\.publicRoutes nor in routeScopes/,
    );
    await app.close();
  });

  it('a route the operator lists as public is public even though the code gives it a scope', async () => {
    const { app } = await build({}, { publicRoutes: ['/health', '/metrics'] });
    try {
      const response = await app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({});
      expect((await app.inject({ method: 'POST', url: '/v1/chat/completions' })).statusCode).toBe(401);
    } finally {
      await app.close();
    }
  });
});

describe('a 100 KB token', () => {
  const hugeToken = async () => (await tokenWith('chat')).padEnd(100 * 1024, 'Q');

  /** Sends raw bytes and reads whatever comes back until the server closes the connection. */
  async function rawRequest(app: FastifyInstance, token: string): Promise<string> {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += chunk;
      });
      // The server may close while the client is still writing the oversized header.
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(received));
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
      );
    });
  }

  it('inject (no Node header limit): 401 from the plugin, reason too_large', async () => {
    const token = await hugeToken();
    const response = await chat({ authorization: `Bearer ${token}` });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('invalid_api_key');
    expect(built.failures).toEqual(['too_large']);
    expect(response.body).not.toContain('QQQQQQQQ');
  });

  it("over the network with Node's default 16 KiB header limit: 431 before any app code, token not echoed", async () => {
    const { app, failures } = await build();
    try {
      const response = await rawRequest(app, await hugeToken());
      expect(response).toMatch(/^HTTP\/1\.1 431 /);
      expect(response).not.toContain('QQQQQQQQ');
      expect(response.length).toBeLessThan(1024);
      expect(failures).toEqual([]); // the plugin never saw it
    } finally {
      await app.close();
    }
  });

  it('over the network with a 256 KiB header limit: 401 from the plugin in OpenAI shape, token not echoed', async () => {
    const { app, failures } = await build({ http: { maxHeaderSize: 256 * 1024 } } as FastifyServerOptions);
    try {
      const response = await rawRequest(app, await hugeToken());
      expect(response).toMatch(/^HTTP\/1\.1 401 /);
      expect(response).toMatch(/www-authenticate: Bearer realm="chatmirror", error="invalid_token"/i);
      const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4));
      expect(body.error).toEqual({
        message: 'Invalid authentication credentials.',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      });
      expect(response).not.toContain('QQQQQQQQ');
      expect(failures).toEqual(['too_large']);
    } finally {
      await app.close();
    }
  });
});
