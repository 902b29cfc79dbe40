/** HTTPS requests that trust exactly one CA (the stack's), and plain HTTP for Prometheus on loopback. */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function https(
  url: string,
  options: { ca: string; token?: string; body?: unknown; servername?: string; timeoutMs?: number },
): Promise<Reply> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((done, fail) => {
    const req = httpsRequest(
      url,
      {
        method: payload === undefined ? 'GET' : 'POST',
        ca: options.ca,
        ...(options.servername === undefined ? {} : { servername: options.servername }),
        headers: {
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
        timeout: options.timeoutMs ?? 60_000,
      },
      (res) => collect(res, done, fail),
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', fail);
    req.end(payload);
  });
}

function collect(res: IncomingMessage, done: (reply: Reply) => void, fail: (err: Error) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    body += chunk;
  });
  res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
  res.on('error', fail);
}

export function http(url: string, timeoutMs = 30_000): Promise<Reply> {
  return new Promise((done, fail) => {
    const req = httpRequest(url, { timeout: timeoutMs }, (res) => collect(res, done, fail));
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', fail);
    req.end();
  });
}

/** A PromQL instant query; the result vector (empty: no data). */
export async function promQuery(
  base: string,
  expr: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const reply = await http(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const parsed = JSON.parse(reply.body) as { status: string; error?: string; data?: { result: [] } };
  if (parsed.status !== 'success') throw new Error(`${expr}: ${parsed.error ?? reply.body}`);
  return parsed.data?.result ?? [];
}

/** SSE `data:` payloads of a streamed reply body, `[DONE]` included. */
export function sseData(body: string): string[] {
  return body
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => line.slice('data: '.length));
}

export { until } from '../helpers/poll.js';
