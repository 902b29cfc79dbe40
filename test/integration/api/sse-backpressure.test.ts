/**
 * A streaming client that stops reading (issue 10, item 5): the server stops feeding its socket once the
 * socket is full, and a connection that stays unwritable past server.writeStallMs is closed and its
 * generation cancelled, so the batch slot is freed and the bytes it holds stay bounded. A real TCP socket that
 * never reads; nothing is mocked.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
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

describe('SSE flow control: a full socket pauses the generation', () => {
  const BUFFER_BYTES = 16_384;
  let f: TestApp;
  let fport: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    f = await startApp({
      CHATMIRROR_SERVER_WRITE_STALL_MS: '3000',
      CHATMIRROR_SERVER_STREAM_BUFFER_BYTES: String(BUFFER_BYTES),
    });
    fport = Number(new URL(await f.app.listen({ host: '127.0.0.1', port: 0 })).port);
    f.app.server.on('connection', (socket: Socket) => sockets.push(socket));
  });
  afterAll(async () => stopApp(f));

  it('parks every choice out of the batch while the client reads nothing, holds the bytes, then cuts it', async () => {
    const body = JSON.stringify({
      model: f.engine.info.name,
      messages: [{ role: 'user', content: 'Continue: In the beginning' }],
      max_tokens: 480,
      n: 8,
      logprobs: true,
      top_logprobs: 20,
      stream: true,
      logit_bias: Object.fromEntries(f.engine.info.eosTokenIds.map((id) => [String(id), -100])),
    });
    const { authorization } = await f.auth();
    const request =
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: ${authorization}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const client = spawn('python3', [
      '-c',
      'import socket, sys, time\n' +
        's = socket.socket()\n' +
        's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n' +
        `s.connect(("127.0.0.1", ${fport}))\n` +
        's.sendall(sys.stdin.buffer.read())\n' +
        'print("sent", flush=True)\n' +
        'time.sleep(120)\n',
    ]);
    try {
      client.stdin.end(request);
      await new Promise((resolve) => client.stdout.once('data', resolve));
      // The socket fills, the writer blocks, and the worker parks all 8 sequences out of the batch.
      for (let i = 0; i < 1_000 && f.engine.pausedCount < 8; i++) await sleep(10);
      expect(f.engine.pausedCount).toBe(8);
      const socket = sockets.at(-1)!;
      const steps = f.engine.counters.decodeSteps;
      const written = socket.bytesWritten;
      // Parked, nothing decodes and nothing more is handed to the socket, however long the client waits.
      await sleep(500);
      expect(f.engine.counters.decodeSteps).toBe(steps);
      expect(socket.bytesWritten).toBe(written);
      // What the process holds for this connection: its stream buffer plus the socket's own (the kernel's
      // send buffer, which loopback autotunes to megabytes, is not the process's memory).
      expect(socket.writableLength).toBeLessThanOrEqual(BUFFER_BYTES + 65_536);
      // And the generation stopped long before max_tokens.
      expect(steps).toBeLessThan(480);
      // server.writeStallMs later the connection is cut and the parked sequences end.
      for (let i = 0; i < 1_000 && !socket.destroyed; i++) await sleep(20);
      expect(socket.destroyed).toBe(true);
    } finally {
      client.kill('SIGKILL');
    }
    for (let i = 0; i < 400 && f.engine.stats().running + f.engine.stats().waiting > 0; i++) await sleep(10);
    expect(f.engine.stats()).toEqual({ running: 0, waiting: 0 });
    expect(f.engine.pausedCount).toBe(0);
    const scrape = await f.app.inject({ method: 'GET', url: '/metrics', headers: await f.auth() });
    expect(scrape.body).toMatch(/chatmirror_write_stalls_total 1/);
  });

  it('a client that reads slowly gets its whole stream: paused while it lags, resumed as it drains', async () => {
    const body = JSON.stringify({
      model: f.engine.info.name,
      messages: [{ role: 'user', content: 'Continue: In the beginning' }],
      max_tokens: 480,
      n: 8,
      logprobs: true,
      top_logprobs: 20,
      stream: true,
      logit_bias: Object.fromEntries(f.engine.info.eosTokenIds.map((id) => [String(id), -100])),
    });
    const { authorization } = await f.auth();
    const request =
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Connection: close\r\nAuthorization: ${authorization}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const parksBefore = f.engine.counters.parks;
    // Reads nothing until told (a line on stdin, sent once the server has parked the generation), then all.
    const client = spawn('python3', [
      '-c',
      'import socket, sys\n' +
        's = socket.socket()\n' +
        's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n' +
        `s.connect(("127.0.0.1", ${fport}))\n` +
        's.sendall(sys.stdin.buffer.read(int(sys.argv[1])))\n' +
        'sys.stdin.buffer.readline()\n' +
        'got = bytearray()\n' +
        'while True:\n' +
        '    chunk = s.recv(65536)\n' +
        '    if not chunk: break\n' +
        '    got += chunk\n' +
        'sys.stdout.write(got.decode("utf-8", "replace"))\n',
      String(Buffer.byteLength(request)),
    ]);
    let out = '';
    client.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
    });
    const exited = new Promise((resolve) => client.once('exit', resolve));
    client.stdin.write(request);
    for (let i = 0; i < 1_000 && f.engine.pausedCount < 8; i++) await sleep(10);
    expect(f.engine.pausedCount).toBe(8);
    client.stdin.end('go\n');
    await exited;
    // The stream outran the client, so the generation was parked at least once, and it still came whole.
    expect(f.engine.counters.parks).toBeGreaterThan(parksBefore);
    // (Chunked transfer encoding: frames are matched, not split.)
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(out.match(/"finish_reason":"length"/g)).toHaveLength(8);
    expect(out).toMatch(/data: \[DONE\]\r?\n/);
    expect(f.engine.pausedCount).toBe(0);
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
