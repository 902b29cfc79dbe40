/**
 * What the HTTPS server offers, probed with a real client one suite at a time: TLS 1.3, and for TLS 1.2 only
 * Mozilla's "intermediate" AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305); nothing below TLS 1.2. The
 * same after a certificate reload, which builds a new secure context.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, getCiphers, type SecureVersion } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../service/config/load.js';
import { fastifyServerOptions } from '../../../service/server-options.js';
import { ensureDevCertificate } from '../../../service/tls/dev-cert.js';
import { watchCertificate } from '../../../service/tls/reloader.js';

/** The development certificate is ECDSA, so of the intermediate list the ECDSA suites are the ones to expect. */
const EXPECTED_TLS12 = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
];

const certDir = mkdtempSync(join(tmpdir(), 'chatmirror-tls-policy-'));
let app: FastifyInstance;
let port: number;
let files: { certFile: string; keyFile: string };

beforeAll(async () => {
  files = await ensureDevCertificate(certDir);
  const pair = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  app = Fastify(fastifyServerOptions(loadConfig({ env: {} }), pair));
  app.get('/ping', async () => 'pong');
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await app.close();
  rmSync(certDir, { recursive: true, force: true });
});

/** The suite negotiated, or undefined when the server refused the handshake. */
function handshake(options: { ciphers?: string; min: SecureVersion; max: SecureVersion }) {
  return new Promise<string | undefined>((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      minVersion: options.min,
      maxVersion: options.max,
      ...(options.ciphers ? { ciphers: options.ciphers } : {}),
    });
    socket.once('secureConnect', () => {
      resolve(socket.getCipher().name);
      socket.destroy();
    });
    socket.once('error', () => resolve(undefined));
  });
}

async function offeredTls12(): Promise<string[]> {
  const candidates = getCiphers()
    .map((c) => c.toUpperCase())
    .filter((c) => !c.startsWith('TLS_'));
  const offered: string[] = [];
  for (const cipher of candidates) {
    const name = await handshake({ ciphers: `${cipher}:@SECLEVEL=0`, min: 'TLSv1.2', max: 'TLSv1.2' });
    if (name !== undefined) offered.push(cipher);
  }
  return offered.sort();
}

describe('TLS policy', () => {
  it('offers only the intermediate AEAD suites over TLS 1.2, TLS 1.3, and nothing older', async () => {
    expect(await offeredTls12()).toEqual([...EXPECTED_TLS12].sort());
    expect(await handshake({ min: 'TLSv1.3', max: 'TLSv1.3' })).toMatch(/^TLS_/);
    expect(await handshake({ min: 'TLSv1', max: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })).toBeUndefined();
  });

  it('keeps that policy after a certificate reload', async () => {
    const watcher = watchCertificate(app.server as never, files, { info: () => {}, error: () => {} });
    try {
      expect(await watcher.reload()).toBe(true);
      expect(await offeredTls12()).toEqual([...EXPECTED_TLS12].sort());
    } finally {
      watcher.close();
    }
  });
});
