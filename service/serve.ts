/**
 * `chatmirror serve`: config → TLS material → engine → app → listen, then a graceful drain on SIGTERM/SIGINT.
 * Only the wiring lives here; each step is its own module.
 */
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { loadConfig } from './config/load.js';
import { cacheDir } from './config/paths.js';
import type { ServiceConfig } from './config/schema.js';
import { Engine } from './engine/index.js';
import { modelDirProblem } from './model-dir.js';
import { startMetricsListener } from './observability/http-metrics-plugin.js';
import { loggerOptions } from './observability/logging.js';
import { logUnhandledRejections } from './observability/process-guards.js';
import { type DevAuth, ensureDevAuth } from './security/auth/dev-auth.js';
import { serviceBaseUrl, type TlsKeyPair } from './server-options.js';
import { ensureDevCertificate } from './tls/dev-cert.js';
import { type CertificateWatcher, watchCertificate } from './tls/reloader.js';

// After the grace period the engine is closed, which ends every stream with an error event; handlers then get
// this long to write it before their connections are cut.
const FORCE_CLOSE_AFTER_ABORT_MS = 2_000; // 2 seconds
const IDLE_SWEEP_MS = 100; // 0.1 seconds: how soon a drained keep-alive connection is closed
const DRAIN_POLL_MS = 50; // how often the drain checks whether the generations in flight have finished
/** What SIGHUP does, said in its log line and in docs/api.md alike. */
export const SIGHUP_RELOADS =
  're-read the TLS certificate and the JWKS; the config file is not re-read (restart to apply changes to it)';
// Once shut down, the process should exit on its own; if a stray handle keeps it alive, exit anyway.
const EXIT_WATCHDOG_MS = 5_000; // 5 seconds

export interface ServeOptions {
  /** Config file (YAML or JSON); defaults to `$CHATMIRROR_CONFIG`. */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunningService {
  app: FastifyInstance;
  engine: Engine;
  config: ServiceConfig;
  /** Where clients reach the API, e.g. `https://127.0.0.1:8443`. */
  baseUrl: string;
  /** Drains and closes everything; the signal handlers call this. Calling it again returns the same promise. */
  shutdown(reason?: string): Promise<void>;
}

interface TlsSetup {
  files: { certFile: string; keyFile: string };
  pair: TlsKeyPair;
  /** The self-signed development certificate, which clients must be pointed at explicitly. */
  selfSigned: boolean;
}

export async function serve(options: ServeOptions = {}): Promise<RunningService> {
  const env = options.env ?? process.env;
  const config = loadConfig({ file: options.configFile, env });
  // Before anything is written (certificate, signing key) or loaded.
  const missing = await modelDirProblem(config.engine.modelDir);
  if (missing !== undefined) throw new Error(missing);
  const tls = await setUpTls(config);
  const dev = await setUpDevAuth(config, env);

  const engine = await Engine.load(config.engine.modelDir, {
    graphFile: config.engine.graphFile,
    intraOpThreads: config.engine.intraOpThreads,
    spinThreads: config.engine.spinThreads,
    runtime: config.engine.runtime,
    maxBatchSize: config.engine.maxBatchSize,
    maxQueue: config.engine.maxQueue,
    tokenizerThreads: config.engine.tokenizerThreads,
    contextLength: config.engine.contextLength,
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({ config, engine, https: tls?.pair, logger: loggerOptions(config) });
  } catch (err) {
    await engine.close();
    throw err;
  }
  try {
    // Checked now rather than at the first SIGTERM, when it would be too late to say.
    if (!app.hasDecorator('lifecycle')) throw new Error('buildApp must decorate the app with `lifecycle`');
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    await app.close();
    await engine.close();
    throw err;
  }

  // Last line only: known failure paths handle their own errors; this keeps a missed one from killing streams.
  const stopLoggingRejections = logUnhandledRejections(app.log, app.metrics?.unhandledRejections);
  const baseUrl = serviceBaseUrl(config, app.server.address());
  // Which runtime runs the graph decides decode speed (ort.c says why), so an operator should see it.
  const { name, runtime } = engine.info;
  app.log.info(
    { model: name, runtime },
    runtime === 'native' || config.engine.runtime !== 'auto'
      ? `engine: ${name} on ${runtime}`
      : `engine: ${name} on ${runtime}: chatmirror's onnxruntime binding is not built, decoding is slower (bash service/native/build.sh)`,
  );
  const metricsListener =
    app.metrics && config.metrics.port !== undefined
      ? await startMetricsListener(app.metrics, { host: config.server.host, port: config.metrics.port })
      : undefined;
  process.stdout.write(
    howToCall({
      baseUrl,
      modelId: config.models.id,
      caFile: tls?.selfSigned ? tls.files.certFile : undefined,
      devToken: dev ? await dev.mintDevToken() : undefined,
      authRequired: !config.auth.publicRoutes.includes('/v1/chat/completions'),
    }),
  );
  if (metricsListener) process.stdout.write(`  metrics: http://${metricsListener.address}/metrics\n\n`);
  // SIGHUP also re-reads a local JWKS, so a rotated signing key is picked up without a restart.
  const onHangup = () => {
    app.authenticator.reload().then(
      () => app.log.info(`SIGHUP: ${SIGHUP_RELOADS}`),
      (err: Error) => app.log.error(`SIGHUP: JWKS reload failed, keeping the old keys: ${err.message}`),
    );
  };
  process.on('SIGHUP', onHangup);
  const watcher: CertificateWatcher | undefined =
    tls === undefined ? undefined : watchCertificate(app.server as HttpsServer, tls.files, app.log);

  let skipGrace: () => void = () => {};
  const graceOver = new Promise<void>((resolve) => {
    skipGrace = resolve;
  });
  let shuttingDown: Promise<void> | undefined;

  async function drainAndClose(reason: string): Promise<void> {
    const graceMs = config.server.shutdownGraceMs;
    app.log.info(`${reason}: draining; requests in flight have ${graceMs} ms to finish`);
    app.lifecycle.beginDrain();
    watcher?.close();
    const graceTimer = setTimeout(skipGrace, graceMs);
    // Still listening while generations finish: a new connection gets the documented 503 server_shutting_down
    // (and /ready 503) instead of ECONNREFUSED, which orchestrators' probes and retrying clients rely on. The
    // listener closes once nothing is generating, or when the grace period ends.
    const idleSweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
    let graceEnded = false;
    await Promise.race([
      untilIdle(engine, () => graceEnded),
      graceOver.then(() => {
        graceEnded = true;
      }),
    ]);
    // server.close() drops the connections idle at that moment only; one whose response finishes later would
    // stay open for keepAliveTimeoutMs and hold up the close, so keep dropping idle ones until it completes.
    const closed = app.close();
    try {
      const finished = await Promise.race([closed.then(() => true), graceOver.then(() => false)]);
      if (!finished) {
        const { running, waiting } = engine.stats();
        app.log.warn(`grace period over: aborting ${running} running and ${waiting} queued generations`);
        await engine.close();
        const ended = await Promise.race([
          closed.then(() => true),
          delay(FORCE_CLOSE_AFTER_ABORT_MS).then(() => false),
        ]);
        if (!ended) app.server.closeAllConnections();
        await closed;
      }
    } finally {
      clearTimeout(graceTimer);
      clearInterval(idleSweep);
    }
    // Idempotent: after an abort above this returns at once.
    await engine.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGHUP', onHangup);
    stopLoggingRejections();
    await metricsListener?.close();
    app.log.info('shut down');
  }

  function shutdown(reason = 'shutdown requested'): Promise<void> {
    shuttingDown ??= drainAndClose(reason);
    return shuttingDown;
  }

  function onSignal(signal: NodeJS.Signals): void {
    if (shuttingDown !== undefined) {
      // A second Ctrl-C means "now": stop waiting for requests in flight.
      app.log.warn(`${signal} again: aborting requests in flight`);
      skipGrace();
      return;
    }
    shutdown(signal).then(
      () => {
        process.exitCode = 0;
        setTimeout(() => process.exit(0), EXIT_WATCHDOG_MS).unref();
      },
      (err: Error) => {
        app.log.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      },
    );
  }
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  return { app, engine, config, baseUrl, shutdown };
}

/** Configured certificate, or the development one; undefined when TLS is switched off. */
async function setUpTls(config: ServiceConfig): Promise<TlsSetup | undefined> {
  const { tls } = config.server;
  if (!tls.enabled) return undefined;
  const configured = tls.certFile !== undefined && tls.keyFile !== undefined;
  const files = configured
    ? { certFile: tls.certFile!, keyFile: tls.keyFile! }
    : await ensureDevCertificate(tls.devCertDir);
  const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  return {
    files: { certFile: files.certFile, keyFile: files.keyFile },
    pair: { cert, key },
    selfSigned: !configured,
  };
}

/**
 * With no credentials configured at all, the demo still requires auth: a development signing key (kept, like
 * the dev certificate, in the cache) verifies short-lived tokens that the banner prints.
 */
async function setUpDevAuth(config: ServiceConfig, env: NodeJS.ProcessEnv): Promise<DevAuth | undefined> {
  if (config.auth.jwt !== undefined || config.auth.apiKeys.length > 0) return undefined;
  const dev = await ensureDevAuth(join(cacheDir(env), 'dev-auth'));
  config.auth = { ...config.auth, ...dev.auth };
  return dev;
}

/**
 * The lines printed once listening: where the API is, what a client must trust and send, each as a line to paste
 * (`export CHATMIRROR_CA=…`, `export CHATMIRROR_TOKEN=…`, what README's examples use), and a request to try.
 */
export function howToCall(options: {
  baseUrl: string;
  modelId: string;
  caFile?: string | undefined;
  devToken?: string | undefined;
  /** Whether the chat route needs a credential (it does unless auth.publicRoutes lists it); default true. */
  authRequired?: boolean;
}): string {
  const url = `${options.baseUrl}/v1/chat/completions`;
  const body = JSON.stringify({ model: options.modelId, messages: [{ role: 'user', content: 'Say hello' }] });
  const authRequired = options.authRequired ?? true;
  const curl = [
    `curl ${options.caFile === undefined ? '' : `--cacert ${shellQuote(options.caFile)} `}${url}`,
    ...(authRequired ? [`-H "Authorization: Bearer $CHATMIRROR_TOKEN"`] : []),
    `-H 'Content-Type: application/json'`,
    `-d ${shellQuote(body)}`,
  ].join(' \\\n    ');
  const lines = [
    `chatmirror: serving ${options.modelId} at ${options.baseUrl}`,
    `  chat completions: POST ${url}`,
    ...(options.caFile === undefined
      ? []
      : [
          `  self-signed development certificate: ${options.caFile} (clients must trust it explicitly)`,
          `  export CHATMIRROR_CA=${shellQuote(options.caFile)}`,
        ]),
    ...(options.devToken !== undefined
      ? [
          '  development token (all scopes, valid 1 hour; `chatmirror token` mints real ones):',
          `  export CHATMIRROR_TOKEN=${options.devToken}`,
        ]
      : authRequired
        ? [
            '  credentials: as configured (auth.jwt, auth.apiKeys); put a token from `chatmirror token` or an API',
            '  key in CHATMIRROR_TOKEN for the request below',
          ]
        : []),
    '',
    '  try:',
    `  ${curl}`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Resolves once the engine has nothing running or queued (or `stop` says the wait is over anyway). */
async function untilIdle(engine: Engine, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const { running, waiting } = engine.stats();
    if (running + waiting === 0) return;
    await delay(DRAIN_POLL_MS);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
