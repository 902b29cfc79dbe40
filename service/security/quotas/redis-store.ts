/**
 * Quota counters in Redis, shared by every replica. Each method is one Lua script, so a check and its charge
 * are atomic however many replicas hit the same subject; the clock is Redis's own (`TIME`), so replicas with
 * skewed clocks still agree. The arithmetic is memory-store.ts's, line for line (see store.ts for the model).
 *
 * Keys: `chatmirror:quota:<key>`; a bucket is a hash {u: used × windowMs, t: ms}, expiring when it would be
 * full again; a slot set is a sorted set of slot ids scored by their expiry, expiring with its last slot.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import {
  assertHit,
  assertSlotArgs,
  type BucketHit,
  type BucketState,
  type ConsumeResult,
  type QuotaStore,
} from './store.js';
import type { StoreHealth } from './store-health.js';

export const DEFAULT_KEY_PREFIX = 'chatmirror:quota:';
/** A quota check waits at most this long for Redis before the request fails (instead of hanging). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2_000; // 2 seconds
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000; // 5 seconds

export interface RedisStoreOptions {
  keyPrefix?: string;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * The password (AUTH), kept out of the URL (quotas.redisPasswordFile); the URL must then carry none. A user
   * name in the URL (Redis ACLs) is sent with it.
   */
  password?: string;
  /** Connection errors (Redis restarts, network); the client reconnects by itself. */
  onError?: (err: Error) => void;
  /**
   * Told when the connection is lost (an error, or the socket closing) and when it is ready again, so that
   * readiness follows Redis even before a request fails.
   */
  health?: StoreHealth;
}

// Shared by every script: Redis's clock in whole milliseconds, and numbers written without Lua's %.14g rounding.
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(x) return string.format('%.0f', x) end
local function used_now(key, limit)
  local state = redis.call('HMGET', key, 'u', 't')
  if not state[1] then return 0 end
  return math.max(0, tonumber(state[1]) - math.max(0, now - tonumber(state[2])) * limit)
end
local function store(key, used, limit)
  if used == 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'u', int(used), 't', int(now))
    redis.call('PEXPIRE', key, int(math.ceil(used / limit)))
  end
end
local function state(used, limit, window, retry)
  return { math.max(0, math.floor((limit * window - used) / window)), math.ceil(used / limit), retry }
end
`;

/** KEYS: buckets; ARGV: limit, windowMs, cost per bucket. Returns allowed, then remaining, resetMs, retry each. */
const CONSUME = `${PRELUDE}
local n = #KEYS
local used = {}
local allowed = 1
for i = 1, n do
  local limit, window, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  used[i] = used_now(KEYS[i], limit)
  if used[i] + cost * window > limit * window then allowed = 0 end
end
local out = { allowed }
for i = 1, n do
  local limit, window, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local u = used[i]
  local retry = 0
  if allowed == 1 then
    u = u + cost * window
    store(KEYS[i], u, limit)
  else
    local excess = u + cost * window - limit * window
    if excess > 0 then
      if cost > limit then retry = -1 else retry = math.ceil(excess / limit) end
    end
  end
  for _, v in ipairs(state(u, limit, window, retry)) do table.insert(out, v) end
end
return out
`;

/** KEYS[1]: bucket; ARGV: limit, windowMs, cost (may be negative). Returns remaining, resetMs, 0. */
const ADJUST = `${PRELUDE}
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local u = math.max(0, used_now(KEYS[1], limit) + cost * window)
store(KEYS[1], u, limit)
return state(u, limit, window, 0)
`;

/** KEYS[1]: slot set; ARGV: limit, ttlMs, id. Returns 1 when the slot was taken. */
const ACQUIRE = `${PRELUDE}
local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], int(now + ttl), ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], int(ttl)) end
return 1
`;

/** KEYS[1]: slot set; ARGV: ttlMs, id. Returns 1 when the slot was still held; it is held afterwards either way. */
const RENEW = `${PRELUDE}
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local held = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], int(now + ttl), ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], int(ttl)) end
if held then return 1 end
return 0
`;

interface Script {
  source: string;
  sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  consume: script(CONSUME),
  adjust: script(ADJUST),
  acquire: script(ACQUIRE),
  renew: script(RENEW),
};

export class RedisStore implements QuotaStore {
  readonly #client: Redis;
  readonly #prefix: string;
  /** Set by close(): the connection ending then is no outage. */
  #closing = false;

  /** Takes ownership of a connected client: `close()` quits it. */
  constructor(client: Redis, options: Pick<RedisStoreOptions, 'keyPrefix' | 'health'> = {}) {
    this.#client = client;
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    const { health } = options;
    if (health) {
      client.on('error', (err: Error) => {
        if (!this.#closing) health.failed('connection', err);
      });
      client.on('close', () => {
        if (!this.#closing) health.failed('connection', new Error('the connection to Redis closed'));
      });
      client.on('ready', () => health.succeeded());
    }
  }

  /**
   * Connects to `url` (redis:// or rediss://) and resolves once Redis answers. While the connection is down,
   * commands fail at once (no offline queue) so requests get an error, not a hang; the client keeps
   * reconnecting in the background.
   */
  static async connect(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const clientOptions: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    };
    const client =
      options.password === undefined
        ? new Redis(url, clientOptions)
        : new Redis(withoutUserinfo(url), { ...clientOptions, ...credentials(url, options.password) });
    client.on('error', (err: Error) => options.onError?.(err));
    try {
      await client.connect();
      await Promise.all(Object.values(SCRIPTS).map((s) => client.script('LOAD', s.source)));
    } catch (err) {
      client.disconnect();
      throw err;
    }
    return new RedisStore(client, options);
  }

  async consume(hits: readonly BucketHit[]): Promise<ConsumeResult> {
    for (const hit of hits) assertHit(hit);
    if (hits.length === 0) return { allowed: true, buckets: [] };
    const reply = await this.#run(
      SCRIPTS.consume,
      hits.map((hit) => this.#key(hit.key)),
      hits.flatMap((hit) => [hit.limit, hit.windowMs, hit.cost]),
    );
    return {
      allowed: reply[0] === 1,
      buckets: hits.map((hit, i) => toState(hit, reply.slice(1 + 3 * i, 4 + 3 * i))),
    };
  }

  async adjust(hit: BucketHit): Promise<BucketState> {
    assertHit(hit, true);
    const reply = await this.#run(SCRIPTS.adjust, [this.#key(hit.key)], [hit.limit, hit.windowMs, hit.cost]);
    return toState(hit, reply);
  }

  async acquireSlot(key: string, limit: number, ttlMs: number): Promise<string | null> {
    assertSlotArgs(key, limit, ttlMs);
    const id = randomUUID();
    const [taken] = await this.#run(SCRIPTS.acquire, [this.#key(key)], [limit, ttlMs, id]);
    return taken === 1 ? id : null;
  }

  async renewSlot(key: string, id: string, ttlMs: number): Promise<boolean> {
    assertSlotArgs(key, 1, ttlMs);
    const [held] = await this.#run(SCRIPTS.renew, [this.#key(key)], [ttlMs, id]);
    return held === 1;
  }

  async releaseSlot(key: string, id: string): Promise<void> {
    await this.#client.zrem(this.#key(key), id);
  }

  async close(): Promise<void> {
    this.#closing = true;
    try {
      await this.#client.quit();
    } catch {
      // Already disconnected: nothing to flush.
      this.#client.disconnect();
    }
  }

  #key(key: string): string {
    return this.#prefix + key;
  }

  /** EVALSHA, falling back to EVAL when Redis lost its script cache (a restart, SCRIPT FLUSH). */
  async #run(s: Script, keys: string[], args: (string | number)[]): Promise<number[]> {
    let reply: unknown;
    try {
      reply = await this.#client.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      reply = await this.#client.eval(s.source, keys.length, ...keys, ...args);
    }
    return (Array.isArray(reply) ? reply : [reply]) as number[];
  }
}

/** `redis://user@host/0` → `redis://host/0`: ioredis would let the URL's (empty) password win over the option. */
function withoutUserinfo(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}

function credentials(url: string, password: string): Pick<RedisOptions, 'username' | 'password'> {
  const { username, password: inUrl } = new URL(url);
  // Two passwords would leave which one is used to ioredis's merge order: refuse instead of guessing.
  if (inUrl !== '') throw new Error('RedisStore.connect: a password in the URL and in options.password');
  return { ...(username === '' ? {} : { username: decodeURIComponent(username) }), password };
}

function toState(hit: BucketHit, [remaining, resetMs, retry]: number[]): BucketState {
  return {
    limit: hit.limit,
    remaining: remaining!,
    resetMs: resetMs!,
    retryAfterMs: retry === -1 ? Number.POSITIVE_INFINITY : retry!,
  };
}
