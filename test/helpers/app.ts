import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../service/app.js';
import { loadConfig } from '../../service/config/load.js';
import { Engine, type EngineOptions } from '../../service/engine/index.js';
import { TINY_MODEL_DIR } from './model.js';

export interface TestApp {
  app: FastifyInstance;
  engine: Engine;
}

/** The real app on the bundled model, plain HTTP, with env-style config overrides (CHATMIRROR_*). */
export async function startApp(
  env: Record<string, string> = {},
  engineOptions: EngineOptions = {},
): Promise<TestApp> {
  const config = loadConfig({
    env: { CHATMIRROR_ENGINE_MODEL_DIR: TINY_MODEL_DIR, CHATMIRROR_SERVER_TLS_ENABLED: 'false', ...env },
  });
  const engine = await Engine.load(config.engine.modelDir, {
    maxBatchSize: config.engine.maxBatchSize,
    maxQueue: config.engine.maxQueue,
    ...engineOptions,
  });
  const app = await buildApp({ config, engine });
  return { app, engine };
}

export async function stopApp(t: TestApp | undefined): Promise<void> {
  await t?.app.close();
  await t?.engine.close();
}
