/**
 * Prometheus metrics, all named `chatmirror_*` in base units (seconds, tokens). Each app gets its own
 * `Registry` (tests build many apps in one process; the global registry would refuse the second set of names).
 * Process metrics (CPU, memory, event loop, GC) are collected once per process and shared by every registry:
 * prom-client's collector starts a GC observer and an event-loop monitor per call and never stops them.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import type { EngineStats } from '../engine/types.js';

/** What the metrics read from the engine: queue gauges at scrape time, decode-step batch sizes. */
export interface EngineSource {
  stats(): EngineStats;
  /** Called with each decode step's batch size; returns an unsubscribe function. */
  onDecodeStep(listener: (rows: number) => void): () => void;
}

export interface MetricsOptions {
  engine?: EngineSource | undefined;
}

/*
 * Buckets, in seconds unless noted. CPU inference is one to two orders of magnitude slower than GPU serving,
 * and varies with the model (the bundled test model decodes in ~1 ms; a 7B int8 model at batch 16 takes
 * ~1 s per step), so the ranges are wide and denser where SLOs are usually drawn (0.1–1 s).
 */
/** Whole HTTP exchanges, streamed generations included: 5 ms (health, models) to 5 minutes (2048 tokens). */
export const HTTP_DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];
/** Time to first token = queue + prefill: 10 ms (short prompt, idle) to 60 s (long prompt behind a full queue). */
export const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 30, 60];
/** One decode step as a stream sees it: 1 ms (tiny model) to 2 s (large model, full batch, few cores). */
export const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2,
];
/** Admission to last token: 50 ms to 10 minutes (maxTokensCap tokens at a slow ITL). */
export const E2E_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
/** Admission until the scheduler starts the prefill: ~0 when a slot is free, minutes behind a long queue. */
export const QUEUE_TIME_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Rows per decode step (a count, not seconds): every size up to 4, then the common maxBatchSize values. */
export const BATCH_SIZE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

type HttpLabels = 'method' | 'route' | 'status';

export interface Metrics {
  readonly registry: Registry;
  /** The scrape's Content-Type (Prometheus text format 0.0.4). */
  readonly contentType: string;
  readonly httpRequests: Counter<HttpLabels>;
  readonly httpRequestDuration: Histogram<HttpLabels>;
  readonly timeToFirstToken: Histogram<'model'>;
  readonly interTokenLatency: Histogram<'model'>;
  readonly e2eRequestLatency: Histogram<'model'>;
  readonly queueTime: Histogram<'model'>;
  readonly promptTokens: Counter<'model'>;
  readonly generationTokens: Counter<'model'>;
  readonly requestsRunning: Gauge;
  readonly requestsWaiting: Gauge;
  readonly batchSize: Histogram;
  /** One per finished choice, by finish_reason (stop, length, content_filter, abort). */
  readonly requestSuccess: Counter<'model' | 'finish_reason'>;
  /** Generations that ended with an engine error (often mid-stream, after a 200). */
  readonly requestFailures: Counter<'model'>;
  readonly authFailures: Counter<'reason'>;
  readonly rateLimited: Counter<'reason'>;
  readonly contentFiltered: Counter<'stage'>;
  /** Failed quota store calls (Redis unreachable), by operation: admit, release, record_tokens, renew, connection. */
  readonly quotaStoreErrors: Counter<'operation'>;
  /** Streams closed because their client read nothing for server.writeStallMs. */
  readonly writeStalls: Counter;
  /** Promise rejections nothing handled (bugs), caught by the process-level logger. */
  readonly unhandledRejections: Counter;
  /** The exposition text. */
  scrape(): Promise<string>;
  /** Stops listening to the engine; the registry stays readable. */
  close(): void;
}

let processRegistry: Registry | undefined;

/** Process metrics (chatmirror_process_*, chatmirror_nodejs_*), collected once per process. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'chatmirror_' });
  }
  return processRegistry;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const { engine } = options;
  const registry = new Registry();
  const registers = [registry];
  // getMetricsAsArray is typed as plain objects but returns the metric instances themselves.
  for (const metric of processMetrics().getMetricsAsArray())
    registry.registerMetric(metric as unknown as Metric);

  const histogram = <L extends string>(name: string, help: string, buckets: number[], labelNames: L[]) =>
    new Histogram<L>({ name, help, buckets, labelNames, registers });
  const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
    new Counter<L>({ name, help, labelNames, registers });

  const httpLabels: HttpLabels[] = ['method', 'route', 'status'];
  const batchSize = new Histogram({
    name: 'chatmirror_batch_size',
    help: 'Sequences decoded together per decode step.',
    buckets: BATCH_SIZE_BUCKETS,
    registers,
  });
  const unsubscribe = engine?.onDecodeStep((rows) => batchSize.observe(rows));

  const metrics: Metrics = {
    registry,
    contentType: registry.contentType,
    httpRequests: counter('chatmirror_http_requests_total', 'HTTP requests answered.', httpLabels),
    httpRequestDuration: histogram(
      'chatmirror_http_request_duration_seconds',
      'HTTP request duration, until the last byte of the response (whole streams included).',
      HTTP_DURATION_BUCKETS,
      httpLabels,
    ),
    timeToFirstToken: histogram(
      'chatmirror_time_to_first_token_seconds',
      'From admission to the first generated token (queue + prefill).',
      TTFT_BUCKETS,
      ['model'],
    ),
    interTokenLatency: histogram(
      'chatmirror_inter_token_latency_seconds',
      'Between consecutive tokens of one choice.',
      ITL_BUCKETS,
      ['model'],
    ),
    e2eRequestLatency: histogram(
      'chatmirror_e2e_request_latency_seconds',
      'From admission to the last choice finishing.',
      E2E_BUCKETS,
      ['model'],
    ),
    queueTime: histogram(
      'chatmirror_queue_time_seconds',
      'From admission until the engine starts the prefill.',
      QUEUE_TIME_BUCKETS,
      ['model'],
    ),
    promptTokens: counter('chatmirror_prompt_tokens_total', 'Prompt tokens prefilled.', ['model']),
    generationTokens: counter('chatmirror_generation_tokens_total', 'Tokens generated.', ['model']),
    requestsRunning: new Gauge({
      name: 'chatmirror_requests_running',
      help: 'Sequences in the running batch.',
      registers,
      collect() {
        if (engine) this.set(engine.stats().running);
      },
    }),
    requestsWaiting: new Gauge({
      name: 'chatmirror_requests_waiting',
      help: 'Sequences admitted and waiting for a batch slot.',
      registers,
      collect() {
        if (engine) this.set(engine.stats().waiting);
      },
    }),
    batchSize,
    requestSuccess: counter('chatmirror_request_success_total', 'Choices finished, by finish_reason.', [
      'model',
      'finish_reason',
    ]),
    requestFailures: counter('chatmirror_request_failure_total', 'Generations ended by an engine error.', [
      'model',
    ]),
    authFailures: counter('chatmirror_auth_failures_total', 'Requests refused by authentication.', [
      'reason',
    ]),
    rateLimited: counter('chatmirror_rate_limited_total', 'Requests refused by a quota or overload.', [
      'reason',
    ]),
    contentFiltered: counter(
      'chatmirror_content_filtered_total',
      'Deny-list matches, on the prompt (refused) or the output (stopped).',
      ['stage'],
    ),
    quotaStoreErrors: counter(
      'chatmirror_quota_store_errors_total',
      'Failed quota store calls, by operation (admit, release, record_tokens, renew, connection).',
      ['operation'],
    ),
    writeStalls: new Counter({
      name: 'chatmirror_write_stalls_total',
      help: 'Streams closed because the client read nothing for server.writeStallMs (generation cancelled).',
      registers,
    }),
    unhandledRejections: new Counter({
      name: 'chatmirror_unhandled_rejections_total',
      help: 'Promise rejections that nothing handled (each is a bug), logged by the process-level handler.',
      registers,
    }),
    scrape: () => registry.metrics(),
    close() {
      unsubscribe?.();
    },
  };
  return metrics;
}
