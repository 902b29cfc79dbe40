/**
 * A streaming client that stops reading (issue 10, item 5): the server stops feeding its socket once the
 * socket is full, and a connection that stays unwritable past server.writeStallMs is closed and its
 * generation cancelled, so the batch slot is freed and the bytes it holds stay bounded. A real TCP socket that
 * never reads; nothing is mocked.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';

const WRITE_STALL_MS = 300;

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await startApp({ CHATMIRROR_SERVER_WRITE_STALL_MS: String(WRITE_STALL_MS) });
  port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
});
afterAll(async () => stopApp(t));

/** Open connections to the app's listener. */
const connections = () =>
  new Promise<number>((resolve, reject) =>
    t.app.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
  );

describe('SSE backpressure', () => {
  it('closes a stream whose client never reads, cancels its generation and frees the slot', async () => {
    // n=8 with 20 top logprobs per token: megabytes of SSE, far more than the socket buffers hold.
    const body = JSON.stringify({
      model: t.engine.info.name,
      messages: [{ role: 'user', content: 'Continue: In the beginning' }],
      max_tokens: 480,
      n: 8,
      logprobs: true,
      top_logprobs: 20,
      stream: true,
      logit_bias: Object.fromEntries(t.engine.info.eosTokenIds.map((id) => [String(id), -100])),
    });
    const { authorization } = await t.auth();
    const request =
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: ${authorization}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    // A client with a small, fixed receive buffer (Node cannot set SO_RCVBUF; loopback autotuning would
    // otherwise let the kernel swallow megabytes), which sends its request and then reads nothing.
    const client = spawn('python3', [
      '-c',
      'import socket, sys, time\n' +
        's = socket.socket()\n' +
        's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n' +
        `s.connect(("127.0.0.1", ${port}))\n` +
        's.sendall(sys.stdin.buffer.read())\n' +
        'print("sent", flush=True)\n' +
        'time.sleep(120)\n',
    ]);
    try {
      client.stdin.end(request);
      await new Promise((resolve) => client.stdout.once('data', resolve));
      for (let i = 0; i < 1_000 && t.engine.stats().running === 0; i++) await sleep(10);
      expect(t.engine.stats().running).toBeGreaterThan(0);
      expect(await connections()).toBe(1);
      // The server cuts the connection by itself once it has stayed full for writeStallMs.
      for (let i = 0; i < 1_000 && (await connections()) > 0; i++) await sleep(20);
      expect(await connections()).toBe(0);
    } finally {
      client.kill('SIGKILL');
    }
    for (let i = 0; i < 400 && t.engine.stats().running + t.engine.stats().waiting > 0; i++) await sleep(10);
    expect(t.engine.stats()).toEqual({ running: 0, waiting: 0 });
    const scrape = await t.app.inject({ method: 'GET', url: '/metrics', headers: await t.auth() });
    expect(scrape.body).toMatch(/chatmirror_write_stalls_total 1/);
    // The generation was cancelled (finish_reason abort), not completed.
    expect(scrape.body).not.toMatch(
      /chatmirror_request_success_total\{[^}]*finish_reason="length"[^}]*\} [1-9]/,
    );

    // The server still serves everyone else.
    const ok = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await t.auth(),
      payload: { model: t.engine.info.name, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 },
    });
    expect(ok.statusCode).toBe(200);
  });
});

describe('SSE heartbeat', () => {
  let q: TestApp;
  let base: string;
  beforeAll(async () => {
    q = await startApp({ CHATMIRROR_SERVER_SSE_HEARTBEAT_MS: '5' }, { maxBatchSize: 1, maxQueue: 4 });
    base = await q.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => stopApp(q));

  it('sends SSE comments while a stream waits in the queue, so idle-timeout proxies keep it', async () => {
    const headers = { 'content-type': 'application/json', ...(await q.auth()) };
    const noEos = Object.fromEntries(q.engine.info.eosTokenIds.map((id) => [String(id), -100]));
    // A long generation holds the one batch slot.
    const holder = fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: q.engine.info.name,
        prompt: 'And God said',
        max_tokens: 480,
        logit_bias: noEos,
      }),
    });
    for (let i = 0; i < 1_000 && q.engine.stats().running === 0; i++) await sleep(5);
    const waiting = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: q.engine.info.name,
        prompt: 'In the beginning',
        max_tokens: 4,
        stream: true,
      }),
    });
    const text = await waiting.text();
    await holder;
    const frames = text.split('\n\n').filter((f) => f !== '');
    // Comments first (it waited behind the holder), then the data, and the stream still ends as usual.
    expect(frames[0]).toBe(': keep-alive');
    expect(frames.find((f) => f.startsWith('data: {'))).toBeDefined();
    expect(frames.at(-1)).toBe('data: [DONE]');
  });
});
