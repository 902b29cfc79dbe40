/**
 * Redis, the shared quota store, goes away while the real app serves (issue 10, items 1 and 2): a real
 * redis-server is killed under a streamed generation and later started again on the same port. The process
 * must not die of the failed slot release, generation requests fail closed with 503 quota_store_unavailable
 * and Retry-After, /ready says so, the outage is logged once, and everything works again when Redis returns.
 */
import { request as httpRequest } from 'node:http';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';
import { SKIP_REDIS, startRedis, stopRedis, type TestRedis } from '../../helpers/redis-server.js';

/** Polls `check` on the event loop (no fixed sleeps that a slow machine could outrun) until it holds. */
async function until(check: () => boolean | Promise<boolean>, what: string, attempts = 600): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(SKIP_REDIS)('quota store (Redis) outage under load', () => {
  let redis: TestRedis;
  let t: TestApp;
  let base: string;
  let port: number;
  const logs: Record<string, unknown>[] = [];
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    redis = await startRedis();
    port = Number(new URL(redis.url).port);
    const logStream = new PassThrough();
    let pending = '';
    logStream.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line));
    });
    t = await startApp(
      {
        CHATMIRROR_QUOTAS_STORE: 'redis',
        CHATMIRROR_QUOTAS_REDIS_URL: redis.url,
        CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE: '1000',
        CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE: '1000000',
        CHATMIRROR_QUOTAS_DEFAULT_CONCURRENT_REQUESTS: '10',
        CHATMIRROR_LIMITS_RETRY_AFTER_SECONDS: '3',
      },
      {},
      logStream,
    );
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await stopApp(t);
    await stopRedis(redis);
    process.off('unhandledRejection', onRejection);
  });

  const body = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      model: t.engine.info.name,
      messages: [{ role: 'user', content: 'Continue: In the beginning' }],
      max_tokens: 4,
      ...extra,
    });
  const chat = async (extra: Record<string, unknown> = {}) => {
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await t.auth()) },
      body: body(extra),
    });
    return { status: response.status, headers: response.headers, json: await response.json() };
  };
  const ready = async () => (await fetch(`${base}/ready`)).status;
  const storeLogs = () => logs.filter((l) => String(l.msg).startsWith('quota store'));

  it('a stream whose slot release fails does not take the process down; requests get 503 until Redis returns', async () => {
    expect((await chat()).status).toBe(200);
    expect(await ready()).toBe(200);

    // A long stream (EOS banned, so it runs to max_tokens), read until its first chunk.
    const streamBody = body({
      stream: true,
      max_tokens: 480,
      logit_bias: Object.fromEntries(t.engine.info.eosTokenIds.map((id) => [String(id), -100])),
    });
    const auth = await t.auth();
    const { req, firstChunk } = await new Promise<{
      req: ReturnType<typeof httpRequest>;
      firstChunk: string;
    }>((resolve, reject) => {
      const req = httpRequest(
        `${base}/v1/chat/completions`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth },
        },
        (res) => {
          res.once('data', (chunk: Buffer) => {
            res.pause();
            resolve({ req, firstChunk: chunk.toString() });
          });
        },
      );
      req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
      req.end(streamBody);
    });
    expect(firstChunk).toMatch(/^data: /);

    // Redis dies mid-stream; the app notices (readiness turns 503) while the generation still runs.
    redis.process.kill('SIGKILL');
    await new Promise((resolve) => redis.process.once('exit', resolve));
    await until(async () => (await ready()) === 503, '/ready 503');
    expect(t.engine.stats().running).toBeGreaterThan(0);
    // The client goes away: its slot release now fails against the dead store.
    req.destroy();
    await until(() => t.engine.stats().running === 0, 'the stream to be cancelled');

    // Fail closed, as a documented 503 with Retry-After; the process still answers.
    for (let i = 0; i < 3; i++) {
      const refused = await chat();
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('3');
      expect(refused.json).toEqual({
        error: {
          message: expect.stringMatching(/quota store/i),
          type: 'server_error',
          param: null,
          code: 'quota_store_unavailable',
        },
      });
    }
    const readiness = await fetch(`${base}/ready`);
    expect(readiness.status).toBe(503);
    expect(((await readiness.json()) as { error: { code: string } }).error.code).toBe(
      'quota_store_unavailable',
    );
    expect((await fetch(`${base}/health`)).status).toBe(200);

    // Redis comes back on the same address: the client reconnects by itself and requests are admitted again.
    redis = await startRedis({ port });
    await until(async () => (await ready()) === 200, '/ready 200 after Redis restarted');
    expect((await chat()).status).toBe(200);

    expect(rejections).toEqual([]);
    // One line when the outage began, one when it ended: not one per request or per reconnect attempt.
    const lines = storeLogs();
    expect(lines.map((l) => l.msg)).toEqual([
      expect.stringMatching(/^quota store unreachable/),
      expect.stringMatching(/^quota store reachable again/),
    ]);
    // No stack traces: the message says what failed.
    expect(JSON.stringify(lines)).not.toContain('"stack"');
    const scrape = await fetch(`${base}/metrics`, { headers: await t.auth() }).then((r) => r.text());
    expect(scrape).toMatch(/chatmirror_quota_store_errors_total\{operation="release"\} [1-9]/);
    expect(scrape).toMatch(/chatmirror_quota_store_errors_total\{operation="admit"\} [3-9]/);
  });
});
