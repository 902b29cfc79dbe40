/**
 * Servers that close a connection without answering the request on it, as llama-server does (found by
 * bench:compare, where a third of the requests at 16 concurrent failed with `socket hang up`): it announces
 * keep-alive but drops a connection's second request, and at 16 concurrent it drops some new connections too.
 * The client sends such a request again and counts it; a server that never answers still fails it, after
 * FRESH_CONNECTION_RESENDS resends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createAgent,
  FRESH_CONNECTION_RESENDS,
  type RequestTarget,
  streamCompletion,
} from '../../../service/bench/client.js';
import { summarise } from '../../../service/bench/stats.js';

const SSE = 'data: {"choices":[{"text":"hi"}]}\n\ndata: [DONE]\n\n';

let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** `drop(request, onConnection)`: whether to close the socket unanswered (both count from 1). */
async function start(
  drop: (request: number, onConnection: number) => boolean,
): Promise<{ url: string; requests: () => number; connections: () => number }> {
  const perSocket = new WeakMap<object, number>();
  let requests = 0;
  let connections = 0;
  server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    requests += 1;
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (drop(requests, n)) {
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

describe('streamCompletion when the server closes a connection unanswered', () => {
  it('sends a request that met a closed kept-alive connection again, on a new one', async () => {
    const s = await start((_, onConnection) => onConnection > 1);
    const t = target(s.url);
    const first = await streamCompletion(t, 'a');
    const second = await streamCompletion(t, 'b');
    t.agent.destroy();
    expect(first).toMatchObject({ ok: true, outputTokens: 1 });
    expect(first.resent).toBeUndefined();
    expect(second).toMatchObject({ ok: true, outputTokens: 1, resent: 1 });
    // The second request reached the server twice: dropped on the first connection, served on a second one.
    expect(s.requests()).toBe(3);
    expect(s.connections()).toBe(2);
    expect(summarise({ concurrency: 1 }, [first, second], 1, { maxInFlight: 1 }).resent).toBe(1);
  });

  it('sends a request whose new connection was dropped again', async () => {
    const s = await start((request) => request === 1);
    const t = target(s.url);
    const result = await streamCompletion(t, 'a');
    t.agent.destroy();
    expect(result).toMatchObject({ ok: true, resent: 1 });
    expect(s.requests()).toBe(2);
  });

  it('fails a request that new connections keep losing, after a bounded number of resends', async () => {
    const s = await start(() => true);
    const t = target(s.url);
    const result = await streamCompletion(t, 'a');
    t.agent.destroy();
    expect(result).toMatchObject({ ok: false, error: 'socket hang up', resent: FRESH_CONNECTION_RESENDS });
    expect(s.requests()).toBe(1 + FRESH_CONNECTION_RESENDS);
  });
});
