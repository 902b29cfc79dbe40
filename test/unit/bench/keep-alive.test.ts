/**
 * A server that announces keep-alive but drops a connection's second request unanswered, as llama-server does
 * after a streamed response (found by bench:compare: a third of the requests failed with `socket hang up`). The
 * client sends such a request again on a new connection; a request on a new connection that the server drops
 * still fails, once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent, type RequestTarget, streamCompletion } from '../../../service/bench/client.js';

const SSE = 'data: {"choices":[{"text":"hi"}]}\n\ndata: [DONE]\n\n';

let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** Serves the first request on each connection; `dropAll` drops every request instead. */
async function start(
  dropAll: boolean,
): Promise<{ url: string; requests: () => number; connections: () => number }> {
  const perSocket = new WeakMap<object, number>();
  let requests = 0;
  let connections = 0;
  server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    requests += 1;
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (dropAll || n > 1) {
      req.socket.destroy();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(SSE);
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests: () => requests, connections: () => connections };
}

function target(url: string): RequestTarget {
  const endpoint = new URL(`${url}/v1/completions`);
  return {
    api: 'completions',
    endpoint,
    model: 'm',
    maxTokens: 1,
    ignoreEos: false,
    agent: createAgent(endpoint, { maxSockets: 1 }),
  };
}

describe('streamCompletion on a kept-alive connection the server closed', () => {
  it('sends the request again on a new connection', async () => {
    const s = await start(false);
    const t = target(s.url);
    const first = await streamCompletion(t, 'a');
    const second = await streamCompletion(t, 'b');
    t.agent.destroy();
    expect(first).toMatchObject({ ok: true, outputTokens: 1 });
    expect(second).toMatchObject({ ok: true, outputTokens: 1 });
    // The second request reached the server twice: dropped on the first connection, served on a second one.
    expect(s.requests()).toBe(3);
    expect(s.connections()).toBe(2);
  });

  it('fails a request that a new connection also loses, without retrying it', async () => {
    const s = await start(true);
    const t = target(s.url);
    const result = await streamCompletion(t, 'a');
    t.agent.destroy();
    expect(result).toMatchObject({ ok: false, error: 'socket hang up' });
    expect(s.requests()).toBe(1);
  });
});
