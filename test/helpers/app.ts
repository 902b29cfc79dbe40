import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../service/app.js';
import { loadConfig } from '../../service/config/load.js';
import { SCOPES, type Scope, type SubjectLimits } from '../../service/config/schema.js';
import { Engine, type EngineOptions } from '../../service/engine/index.js';
import { loggerOptions } from '../../service/observability/logging.js';
import { generateSigningKey, mintToken, writeKeySet } from '../../service/security/auth/keys.js';
import { TINY_MODEL_DIR } from './model.js';

export const TEST_ISSUER = 'chatmirror-tests';
export const TEST_AUDIENCE = 'chatmirror';

export interface TestApp {
  app: FastifyInstance;
  engine: Engine;
  /** A JWT the app accepts: every scope by default. */
  token(options?: { scopes?: Scope[]; subject?: string; limits?: SubjectLimits }): Promise<string>;
  /** Authorization headers with an all-scopes token. */
  auth(): Promise<{ authorization: string }>;
}

/**
 * The real app on the bundled model, plain HTTP, with a signing key of its own and env-style config overrides
 * (CHATMIRROR_*). Quotas are off unless a test sets them, so suites that send many requests are not throttled.
 */
export async function startApp(
  env: Record<string, string> = {},
  engineOptions: EngineOptions = {},
  /** Where the app's JSON log lines go (the production logger options); default: no logging. */
  logStream?: Writable,
): Promise<TestApp> {
  const keyDir = await mkdtemp(join(tmpdir(), 'chatmirror-keys-'));
  const key = await generateSigningKey({ alg: 'EdDSA' });
  const { jwksFile } = await writeKeySet(keyDir, key);
  const config = loadConfig({
    env: {
      CHATMIRROR_ENGINE_MODEL_DIR: TINY_MODEL_DIR,
      CHATMIRROR_SERVER_TLS_ENABLED: 'false',
      CHATMIRROR_AUTH_JWT_ISSUER: TEST_ISSUER,
      CHATMIRROR_AUTH_JWT_AUDIENCE: TEST_AUDIENCE,
      CHATMIRROR_AUTH_JWT_JWKS_FILE: jwksFile,
      CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE: '0',
      CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE: '0',
      CHATMIRROR_QUOTAS_DEFAULT_CONCURRENT_REQUESTS: '0',
      ...env,
    },
  });
  const engine = await Engine.load(config.engine.modelDir, {
    maxBatchSize: config.engine.maxBatchSize,
    maxQueue: config.engine.maxQueue,
    ...engineOptions,
  });
  const logger = logStream ? { ...loggerOptions(config), stream: logStream } : false;
  const app = await buildApp({ config, engine, logger });
  const token: TestApp['token'] = (options = {}) =>
    mintToken({
      privateJwk: key.privateJwk,
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      subject: options.subject ?? 'test-user',
      scopes: options.scopes ?? [...SCOPES],
      limits: options.limits,
      ttlSeconds: 600,
    });
  return { app, engine, token, auth: async () => ({ authorization: `Bearer ${await token()}` }) };
}

export async function stopApp(t: TestApp | undefined): Promise<void> {
  await t?.app.close();
  await t?.engine.close();
}
