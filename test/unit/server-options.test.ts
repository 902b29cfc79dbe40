import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../service/config/load.js';
import {
  CONNECTIONS_CHECK_INTERVAL_MS,
  fastifyServerOptions,
  serviceBaseUrl,
  type TlsKeyPair,
} from '../../service/server-options.js';
import { ensureDevCertificate } from '../../service/tls/dev-cert.js';

const config = (env: NodeJS.ProcessEnv = {}) => loadConfig({ env });
const certDir = mkdtempSync(join(tmpdir(), 'chatmirror-server-options-'));
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

async function devPair(): Promise<TlsKeyPair> {
  // Made once, then reused by ensureDevCertificate.
  const { certFile, keyFile } = await ensureDevCertificate(certDir);
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

const address = (port: number): AddressInfo => ({ address: '127.0.0.1', family: 'IPv4', port });

describe('fastifyServerOptions', () => {
  it('maps every server limit and timeout for plain HTTP', () => {
    const options = fastifyServerOptions(
      config({
        CHATMIRROR_SERVER_TLS_ENABLED: 'false',
        CHATMIRROR_SERVER_BODY_LIMIT_BYTES: '2048',
        CHATMIRROR_SERVER_REQUEST_TIMEOUT_MS: '60000',
        CHATMIRROR_SERVER_HEADERS_TIMEOUT_MS: '7000',
        CHATMIRROR_SERVER_KEEP_ALIVE_TIMEOUT_MS: '3000',
        CHATMIRROR_SERVER_MAX_HEADER_BYTES: '4096',
      }),
    );
    expect(options).toEqual({
      bodyLimit: 2048,
      requestTimeout: 60_000,
      keepAliveTimeout: 3000,
      connectionTimeout: 0,
      forceCloseConnections: 'idle',
      return503OnClosing: false,
      http: {
        headersTimeout: 7000,
        requestTimeout: 60_000,
        keepAliveTimeout: 3000,
        maxHeaderSize: 4096,
        connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
      },
    });
    expect(options).not.toHaveProperty('https');
  });

  it('carries the key pair and the Node options in `https` when TLS is on', async () => {
    const pair = await devPair();
    const options = fastifyServerOptions(config(), pair);
    expect(options).not.toHaveProperty('http');
    expect(options.https).toMatchObject({
      cert: pair.cert,
      key: pair.key,
      headersTimeout: 10_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 5_000,
      maxHeaderSize: 16_384,
    });
    expect(options.bodyLimit).toBe(1024 * 1024);
  });

  it('produces a server that Fastify and Node configure as asked', async () => {
    const app = Fastify(
      fastifyServerOptions(
        config({
          CHATMIRROR_SERVER_HEADERS_TIMEOUT_MS: '4000',
          CHATMIRROR_SERVER_REQUEST_TIMEOUT_MS: '9000',
          CHATMIRROR_SERVER_KEEP_ALIVE_TIMEOUT_MS: '1500',
          CHATMIRROR_SERVER_MAX_HEADER_BYTES: '2048',
        }),
        await devPair(),
      ),
    );
    try {
      expect(app.server.headersTimeout).toBe(4000);
      expect(app.server.requestTimeout).toBe(9000);
      expect(app.server.keepAliveTimeout).toBe(1500);
      // Node stores the option on the server; @types/node 20 does not declare the property.
      expect((app.server as unknown as { maxHeaderSize: number }).maxHeaderSize).toBe(2048);
      expect(app.initialConfig.bodyLimit).toBe(1024 * 1024);
    } finally {
      await app.close();
    }
  });

  it('enforces the body and header limits on a listening HTTP server', async () => {
    const app = Fastify(
      fastifyServerOptions(
        config({
          CHATMIRROR_SERVER_TLS_ENABLED: 'false',
          CHATMIRROR_SERVER_BODY_LIMIT_BYTES: '100',
          CHATMIRROR_SERVER_MAX_HEADER_BYTES: '1024',
        }),
      ),
    );
    app.post('/echo', async (req) => req.body);
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/echo`;
      const post = (body: string, headers: Record<string, string> = {}) =>
        fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
      expect((await post('{"a":1}')).status).toBe(200);
      expect((await post(JSON.stringify({ a: 'x'.repeat(200) }))).status).toBe(413);
      expect((await post('{"a":1}', { 'x-padding': 'p'.repeat(2000) })).status).toBe(431);
    } finally {
      await app.close();
    }
  });

  it('serves HTTPS with the given pair', async () => {
    const pair = await devPair();
    const app = Fastify(fastifyServerOptions(config(), pair));
    app.get('/ping', async () => ({ pong: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as AddressInfo).port;
      // Trusting the development certificate itself, as the printed curl line does with --cacert.
      const body = await new Promise<string>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path: '/ping', ca: pair.cert }, (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      expect(JSON.parse(body)).toEqual({ pong: true });
    } finally {
      await app.close();
    }
  });
});

describe('serviceBaseUrl', () => {
  it('uses the listening port and the TLS scheme', () => {
    expect(serviceBaseUrl(config(), address(8443))).toBe('https://127.0.0.1:8443');
    expect(serviceBaseUrl(config({ CHATMIRROR_SERVER_PORT: '0' }), address(51234))).toBe(
      'https://127.0.0.1:51234',
    );
    expect(serviceBaseUrl(config({ CHATMIRROR_SERVER_TLS_ENABLED: 'false' }), null)).toBe(
      'http://127.0.0.1:8443',
    );
  });

  it('shows wildcard hosts as loopback and brackets IPv6', () => {
    expect(serviceBaseUrl(config({ CHATMIRROR_SERVER_HOST: '0.0.0.0' }), address(8443))).toBe(
      'https://127.0.0.1:8443',
    );
    expect(serviceBaseUrl(config({ CHATMIRROR_SERVER_HOST: '::' }), address(8443))).toBe(
      'https://[::1]:8443',
    );
    expect(serviceBaseUrl(config({ CHATMIRROR_SERVER_HOST: 'localhost' }), address(8443))).toBe(
      'https://localhost:8443',
    );
  });

  it('prefers publicBaseUrl, without a trailing slash', () => {
    const url = serviceBaseUrl(
      config({ CHATMIRROR_SERVER_PUBLIC_BASE_URL: 'https://chat.example.com/' }),
      address(8443),
    );
    expect(url).toBe('https://chat.example.com');
  });
});
