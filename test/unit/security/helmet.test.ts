import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HSTS_MAX_AGE_SECONDS, registerSecurityHeaders } from '../../../service/security/helmet.js';

describe('registerSecurityHeaders', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function build(tls: boolean) {
    app = Fastify();
    await registerSecurityHeaders(app, { tls });
    // In a child context, as the routes are registered: the headers still apply (helmet is global).
    await app.register(async (child) => {
      child.get('/v1/models', async () => ({ data: [] }));
      child.get('/fail', async () => {
        throw new Error('boom');
      });
    });
    await app.ready();
    return app;
  }

  it('sets nosniff and frame denial, and no CSP, on JSON responses', async () => {
    const res = await (await build(false)).inject({ method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['content-security-policy']).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('sets the headers on errors and unknown routes too', async () => {
    const a = await build(false);
    for (const url of ['/fail', '/no/such/route']) {
      const res = await a.inject({ method: 'GET', url });
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
    }
  });

  it('sends HSTS (one year, subdomains) only when the server speaks TLS', async () => {
    const plain = await (await build(false)).inject({ method: 'GET', url: '/v1/models' });
    expect(plain.headers['strict-transport-security']).toBeUndefined();
    await app!.close();
    const tls = await (await build(true)).inject({ method: 'GET', url: '/v1/models' });
    expect(tls.headers['strict-transport-security']).toBe(
      `max-age=${HSTS_MAX_AGE_SECONDS}; includeSubDomains`,
    );
    expect(HSTS_MAX_AGE_SECONDS).toBe(365 * 24 * 3600);
  });
});
