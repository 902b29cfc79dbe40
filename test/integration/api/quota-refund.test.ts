/**
 * Quota charged for work never done is given back (issue 10, item 8): a request admitted (prompt + n ×
 * max_tokens charged up front) that the engine then refuses is reconciled to what it really used, nothing.
 * Deterministic on a real Redis: CLIENT PAUSE WRITE holds the request inside its admission, the engine is
 * closed meanwhile (the drain's path), and the charge is read back from the store's own key afterwards.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_KEY_PREFIX } from '../../../service/security/quotas/redis-store.js';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';
import { SKIP_REDIS, startRedis, stopRedis, type TestRedis } from '../../helpers/redis-server.js';

describe.skipIf(SKIP_REDIS)('quota refund when the engine refuses an admitted request', () => {
  let redis: TestRedis;
  let raw: Redis;
  let t: TestApp;

  beforeAll(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    t = await startApp({
      CHATMIRROR_QUOTAS_STORE: 'redis',
      CHATMIRROR_QUOTAS_REDIS_URL: redis.url,
      // Small, so the charged bucket takes many seconds to refill (and its key to expire) by itself.
      CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE: '1000',
    });
  });
  afterAll(async () => {
    await raw?.client('UNPAUSE').catch(() => {});
    raw?.disconnect();
    await stopApp(t);
    await stopRedis(redis);
  });

  it('gives back the whole estimate', async () => {
    const tokensKey = `${DEFAULT_KEY_PREFIX}{jwt:refund}:tokens`;
    const headers = { authorization: `Bearer ${await t.token({ subject: 'refund' })}` };
    await raw.client('PAUSE', 10_000, 'WRITE');
    const answer = t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers,
      payload: {
        model: t.engine.info.name,
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 300,
      },
    });
    // The request is inside its admission once its quota script waits on the pause.
    for (;;) {
      const clients = String(await raw.client('LIST'));
      if (/flags=\S*b\S* .*cmd=evalsha/.test(clients)) break;
      await sleep(5);
    }
    await t.engine.close();
    await raw.client('UNPAUSE');
    const response = await answer;
    expect(response.statusCode).toBe(503);
    expect(response.json().error.code).toBe('server_shutting_down');

    // The estimate (prompt + 300, 18 s of refill) was charged, then refunded before the answer went out: the
    // bucket is full again, so its key is gone.
    expect(await raw.hget(tokensKey, 'u')).toBeNull();
  });
});
