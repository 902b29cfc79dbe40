/**
 * The Redis password from a file (quotas.redisPasswordFile) instead of the URL: a real redis-server with
 * requirepass, the real app counting a client's quota in it through the password the loader read from the file,
 * and the store refusing to start with a wrong one.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../service/config/load.js';
import { RedisStore } from '../../../service/security/quotas/redis-store.js';
import { startApp, stopApp, type TestApp } from '../../helpers/app.js';
import { SKIP_REDIS, startRedis, stopRedis, type TestRedis } from '../../helpers/redis-server.js';

describe.skipIf(SKIP_REDIS)('quotas.redisPasswordFile against redis-server with requirepass', () => {
  const password = randomBytes(24).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'chatmirror-redis-password-'));
  const passwordFile = join(dir, 'redis-password');
  let redis: TestRedis;
  let url: string;
  let t: TestApp | undefined;

  beforeAll(async () => {
    redis = await startRedis({ password });
    url = `${redis.url}/0`;
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await stopApp(t);
    await stopRedis(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the server refuses a client without the password', async () => {
    const errors: Error[] = [];
    const failed = await RedisStore.connect(url, { onError: (err) => errors.push(err) }).catch(
      (err: Error) => err,
    );
    expect(failed).toBeInstanceOf(Error);
    expect([failed, ...errors].map((e) => (e as Error).message).join('\n')).toMatch(/NOAUTH/);
  });

  it('the app connects with the password from the file and counts quotas in Redis', async () => {
    t = await startApp({
      CHATMIRROR_QUOTAS_STORE: 'redis',
      CHATMIRROR_QUOTAS_REDIS_URL: url,
      CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: passwordFile,
      CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE: '100',
    });
    const ready = await t.app.inject({ method: 'GET', url: '/ready' });
    expect(ready.statusCode, ready.body).toBe(200);
    const reply = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: await t.auth(),
      payload: { model: 'tiny-llama', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 },
    });
    expect(reply.statusCode, reply.body).toBe(200);
    expect(reply.headers['x-ratelimit-remaining-requests']).toBe('99');
    // The counter is in this Redis, under the service's prefix.
    const admin = new Redis(url, { password, lazyConnect: true });
    try {
      await admin.connect();
      expect(await admin.keys('chatmirror:quota:*')).not.toEqual([]);
    } finally {
      admin.disconnect();
    }
  });

  it('a wrong password in the file keeps the store from connecting', async () => {
    const wrong = join(dir, 'wrong-password');
    writeFileSync(wrong, 'not-the-password\n');
    const config = loadConfig({
      env: {
        CHATMIRROR_QUOTAS_STORE: 'redis',
        CHATMIRROR_QUOTAS_REDIS_URL: url,
        CHATMIRROR_QUOTAS_REDIS_PASSWORD_FILE: wrong,
      },
    });
    expect(config.quotas.redisPassword).toBe('not-the-password');
    const errors: Error[] = [];
    const failed = await RedisStore.connect(config.quotas.redisUrl!, {
      password: config.quotas.redisPassword!,
      onError: (err) => errors.push(err),
    }).catch((err: Error) => err);
    expect(failed).toBeInstanceOf(Error);
    expect([failed, ...errors].map((e) => (e as Error).message).join('\n')).toMatch(/WRONGPASS/);
  });
});
