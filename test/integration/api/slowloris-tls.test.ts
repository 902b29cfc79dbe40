/**
 * Slowloris over TLS (issue 10, item 6): `chatmirror serve` in its own process, HTTPS with the development
 * certificate. A client that sends the request line, Host and then one whole header line every 2 s (never the
 * blank line that ends the block) must be cut once server.headersTimeoutMs has passed since the request began,
 * however steadily it sends; so must one that sends a byte a second. Real TLS sockets; nothing is mocked.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HEADERS_TIMEOUT_MS } from '../../../service/config/schema.js';
import { TINY_MODEL_DIR } from '../../helpers/model.js';
import { type ServeProcess, spawnServe, waitForOutput } from '../../helpers/serve-process.js';

const STARTUP_TIMEOUT_MS = 90_000;
// The default config, as `npm start` runs it (the setting): 10 s.
const HEADERS_TIMEOUT_MS = DEFAULT_HEADERS_TIMEOUT_MS;
// Node checks header timeouts once a second (server-options.ts); a second more for a loaded machine.
const SLACK_MS = 3_000;
// The client would go on this long if nothing cut it: far beyond the bound.
const CLIENT_GIVES_UP_MS = 40_000;

interface Outcome {
  /** Milliseconds from the first byte sent to the server closing the connection. */
  closedAfterMs: number;
  /** What the server sent before closing, if anything (a 408). */
  received: string;
  linesSent: number;
}

/** Opens a TLS connection and sends `first`, then `next()` every `everyMs` until the server closes it. */
function trickle(
  base: URL,
  ca: Buffer,
  first: string,
  next: () => string,
  everyMs: number,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let received = '';
    let linesSent = 0;
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect(
      { host: base.hostname, port: Number(base.port), ca, servername: 'localhost' },
      () => {
        started = performance.now();
        socket.write(first);
        timer = setInterval(() => {
          if (socket.writable) {
            socket.write(next());
            linesSent++;
          }
          if (performance.now() - started > CLIENT_GIVES_UP_MS) {
            clearInterval(timer);
            socket.destroy();
            reject(new Error(`still connected after ${CLIENT_GIVES_UP_MS} ms (${linesSent} lines sent)`));
          }
        }, everyMs);
      },
    );
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      received += text;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: performance.now() - started, received, linesSent });
    });
  });
}

describe('slowloris over TLS', () => {
  let serve: ServeProcess;
  let base: URL;
  let ca: Buffer;
  let cache: string;

  beforeAll(async () => {
    cache = mkdtempSync(join(tmpdir(), 'chatmirror-slowloris-'));
    serve = spawnServe({
      CHATMIRROR_CACHE: cache,
      CHATMIRROR_ENGINE_MODEL_DIR: TINY_MODEL_DIR,
      CHATMIRROR_SERVER_HOST: '127.0.0.1',
      CHATMIRROR_SERVER_PORT: '0',
      CHATMIRROR_SERVER_TLS_ENABLED: 'true',
      CHATMIRROR_LOG_LEVEL: 'warn',
    });
    const banner = await waitForOutput(
      serve,
      /chatmirror: serving \S+ at (https:\/\/\S+)\n[\s\S]*?self-signed development certificate: (\S+)/,
      STARTUP_TIMEOUT_MS,
    );
    base = new URL(banner[1]!);
    ca = readFileSync(banner[2]!);
  }, STARTUP_TIMEOUT_MS + 10_000);

  afterAll(() => {
    serve?.kill();
    if (cache) rmSync(cache, { recursive: true, force: true });
  });

  it('cuts a client that sends one whole header line every 2 s within server.headersTimeoutMs', async () => {
    let n = 0;
    const outcome = await trickle(
      base,
      ca,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: ${base.host}\r\n`,
      () => `X-a${n++}: b\r\n`,
      2_000,
    );
    expect(outcome.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(outcome.closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
    expect(outcome.linesSent).toBeGreaterThanOrEqual(1);
    // Node answers a header timeout with 408 before it closes.
    if (outcome.received !== '') expect(outcome.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(serve.gone()).toBe(false);
  }, 60_000);

  it('cuts a client that sends a byte a second within server.headersTimeoutMs', async () => {
    // A valid request, one byte at a time: the parser never sees an error, only slowness.
    const rest = [
      ...`OST /v1/chat/completions HTTP/1.1\r\nHost: ${base.host}\r\n${'X-slow: and steady\r\n'.repeat(10)}`,
    ];
    const outcome = await trickle(base, ca, 'P', () => rest.shift() ?? 'x', 1_000);
    expect(outcome.linesSent).toBeGreaterThan(3);
    expect(outcome.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(outcome.closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
    expect(serve.gone()).toBe(false);
  }, 60_000);
});
