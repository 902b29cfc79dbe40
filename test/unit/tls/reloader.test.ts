import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureDevCertificate } from '../../../service/tls/dev-cert.js';
import { type CertificateWatcher, watchCertificate } from '../../../service/tls/reloader.js';

interface Pair {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
}

const root = mkdtempSync(join(tmpdir(), 'chatmirror-reload-'));
let pairA: Pair;
let pairB: Pair;

async function makePair(name: string): Promise<Pair> {
  const { certFile, keyFile } = await ensureDevCertificate(join(root, name));
  const cert = readFileSync(certFile);
  return { cert, key: readFileSync(keyFile), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** Replaces a file the way renewal tools do: write aside, then rename over. */
function replace(file: string, content: Buffer): void {
  writeFileSync(`${file}.new`, content);
  renameSync(`${file}.new`, file);
}

/** The SHA-256 fingerprint of the certificate the server presents in a fresh handshake. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false },
      () => {
        const { fingerprint256 } = socket.getPeerCertificate();
        socket.end();
        resolve(fingerprint256);
      },
    );
    socket.on('error', reject);
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeAll(async () => {
  [pairA, pairB] = await Promise.all([makePair('a'), makePair('b')]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('watchCertificate', () => {
  let server: Server;
  let port: number;
  let watcher: CertificateWatcher | undefined;
  let files: { certFile: string; keyFile: string };
  const log = { infos: [] as string[], errors: [] as string[] };
  const logger = { info: (m: string) => log.infos.push(m), error: (m: string) => log.errors.push(m) };

  beforeEach(async () => {
    const dir = mkdtempSync(join(root, 'live-'));
    files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
    writeFileSync(files.certFile, pairA.cert);
    writeFileSync(files.keyFile, pairA.key);
    log.infos.length = 0;
    log.errors.length = 0;
    server = createServer({ cert: pairA.cert, key: pairA.key }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    watcher?.close();
    watcher = undefined;
    await new Promise((resolve) => server.close(resolve));
  });

  it('serves the new certificate after the files change', async () => {
    watcher = watchCertificate(server, files, logger, { intervalMs: 50, debounceMs: 20 });
    expect(await servedFingerprint(port)).toBe(pairA.fingerprint);

    replace(files.keyFile, pairB.key);
    replace(files.certFile, pairB.cert);
    await waitFor(async () => (await servedFingerprint(port)) === pairB.fingerprint, 'certificate B');
    expect(log.infos.some((m) => m.includes('TLS certificate reloaded'))).toBe(true);
  });

  it('keeps the current certificate when the new pair does not match or cannot be read', async () => {
    watcher = watchCertificate(server, files, logger, { intervalMs: 50, debounceMs: 20 });
    // watchFile takes its baseline stat asynchronously: a file replaced before that stat returns is the
    // baseline, and no change is ever seen. Let a few polls pass first (as the test above does).
    for (let i = 0; i < 4; i++) expect(await servedFingerprint(port)).toBe(pairA.fingerprint);
    // Certificate B with key A: a half-finished renewal.
    replace(files.certFile, pairB.cert);
    await waitFor(() => log.errors.length > 0, 'the mismatch to be logged');
    expect(log.errors[0]).toContain('is not the key of');
    expect(log.errors[0]).toContain('keeping the current one');
    expect(await servedFingerprint(port)).toBe(pairA.fingerprint);

    unlinkSync(files.keyFile);
    expect(await watcher.reload()).toBe(false);
    expect(log.errors.at(-1)).toContain('ENOENT');
    writeFileSync(files.keyFile, 'garbage');
    expect(await watcher.reload()).toBe(false);
    expect(await servedFingerprint(port)).toBe(pairA.fingerprint);

    // Once the pair is whole again it is picked up.
    replace(files.keyFile, pairB.key);
    await waitFor(async () => (await servedFingerprint(port)) === pairB.fingerprint, 'certificate B');
  });

  it('reloads on SIGHUP', async () => {
    // Polling too slow to notice within the test: only the signal can cause the reload.
    watcher = watchCertificate(server, files, logger, { intervalMs: 60_000 });
    replace(files.keyFile, pairB.key);
    replace(files.certFile, pairB.cert);
    process.emit('SIGHUP', 'SIGHUP');
    await waitFor(async () => (await servedFingerprint(port)) === pairB.fingerprint, 'certificate B');
  });

  it('stops watching and listening for SIGHUP once closed', async () => {
    const listeners = process.listenerCount('SIGHUP');
    watcher = watchCertificate(server, files, logger, { intervalMs: 50, debounceMs: 20 });
    expect(process.listenerCount('SIGHUP')).toBe(listeners + 1);
    watcher.close();
    expect(process.listenerCount('SIGHUP')).toBe(listeners);

    replace(files.keyFile, pairB.key);
    replace(files.certFile, pairB.cert);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(log.infos).toEqual([]);
    expect(await servedFingerprint(port)).toBe(pairA.fingerprint);
  });
});
