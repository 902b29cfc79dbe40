import Fastify, { type FastifyInstance } from 'fastify';
import type { Histogram } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { observeGeneration } from '../../../service/observability/generation-observer.js';
import {
  httpMetricsPlugin,
  METRICS_PATH,
  startMetricsListener,
  UNMATCHED_ROUTE,
} from '../../../service/observability/http-metrics-plugin.js';
import {
  BATCH_SIZE_BUCKETS,
  createMetrics,
  type EngineSource,
  ITL_BUCKETS,
  type Metrics,
  TTFT_BUCKETS,
} from '../../../service/observability/metrics.js';

/** name → [type, label names] for every metric chatmirror defines. */
const EXPECTED: Record<string, [string, string[]]> = {
  chatmirror_http_requests_total: ['counter', ['method', 'route', 'status']],
  chatmirror_http_request_duration_seconds: ['histogram', ['method', 'route', 'status']],
  chatmirror_time_to_first_token_seconds: ['histogram', ['model']],
  chatmirror_inter_token_latency_seconds: ['histogram', ['model']],
  chatmirror_e2e_request_latency_seconds: ['histogram', ['model']],
  chatmirror_queue_time_seconds: ['histogram', ['model']],
  chatmirror_prompt_tokens_total: ['counter', ['model']],
  chatmirror_generation_tokens_total: ['counter', ['model']],
  chatmirror_requests_running: ['gauge', []],
  chatmirror_requests_waiting: ['gauge', []],
  chatmirror_batch_size: ['histogram', []],
  chatmirror_request_success_total: ['counter', ['model', 'finish_reason']],
  chatmirror_request_failure_total: ['counter', ['model']],
  chatmirror_auth_failures_total: ['counter', ['reason']],
  chatmirror_rate_limited_total: ['counter', ['reason']],
  chatmirror_content_filtered_total: ['counter', ['stage']],
};

/**
 * One exposition line: name, optional {labels}, a value. Prometheus parses the value with Go's ParseFloat, which
 * ignores case in NaN and Inf (prom-client writes the event-loop gauges as `Nan` before their first sample).
 */
const SAMPLE_LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-]Inf)$/;

function matches(labels: Record<string, string>) {
  return (v: { labels: Partial<Record<string, string | number>> }) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l);
}

/** A counter's value for the given labels (0 when that series does not exist yet). */
async function value(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metrics.registry.getSingleMetric(name)!.get();
  return values.find(matches(labels))?.value ?? 0;
}

async function histogramCount(metrics: Metrics, name: string, labels: Record<string, string> = {}) {
  const { values } = await (metrics.registry.getSingleMetric(name) as Histogram).get();
  const series = values.filter(matches(labels));
  return {
    count: series.find((v) => v.metricName === `${name}_count`)?.value ?? 0,
    sum: series.find((v) => v.metricName === `${name}_sum`)?.value ?? 0,
  };
}

function fakeEngine(): EngineSource {
  return { stats: () => ({ running: 3, waiting: 5 }), onDecodeStep: () => () => {} };
}

describe('createMetrics', () => {
  it('defines every metric with its type and labels', async () => {
    const metrics = createMetrics();
    const json = await metrics.registry.getMetricsAsJSON();
    for (const [name, [type, labels]] of Object.entries(EXPECTED)) {
      const metric = json.find((m) => m.name === name);
      expect(metric, name).toBeDefined();
      expect(metric!.type, name).toBe(type);
      expect(
        (metrics.registry.getSingleMetric(name) as unknown as { labelNames: string[] }).labelNames,
      ).toEqual(labels);
    }
  });

  it('uses buckets sized for CPU inference', async () => {
    const metrics = createMetrics();
    metrics.timeToFirstToken.observe({ model: 'm' }, 0.2);
    metrics.interTokenLatency.observe({ model: 'm' }, 0.05);
    metrics.batchSize.observe(3);
    const text = await metrics.scrape();
    const bounds = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"`, 'gm'))].map((m) => m[1]);
    const les = (name: string, labels: string) =>
      [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)",${labels}\\}`, 'gm'))].map((m) => m[1]);
    expect(les('chatmirror_time_to_first_token_seconds', 'model="m"')).toEqual([
      ...TTFT_BUCKETS.map(String),
      '+Inf',
    ]);
    expect(TTFT_BUCKETS[0]).toBe(0.01);
    expect(TTFT_BUCKETS).toContain(30);
    expect(les('chatmirror_inter_token_latency_seconds', 'model="m"')).toEqual([
      ...ITL_BUCKETS.map(String),
      '+Inf',
    ]);
    expect(ITL_BUCKETS[0]).toBe(0.001);
    expect(ITL_BUCKETS.at(-1)).toBe(2);
    expect(bounds('chatmirror_batch_size')).toEqual([...BATCH_SIZE_BUCKETS.map(String), '+Inf']);
  });

  it('includes process metrics under the chatmirror_ prefix, in every registry', async () => {
    const a = await createMetrics().scrape();
    const b = await createMetrics().scrape();
    for (const text of [a, b]) {
      expect(text).toContain('# TYPE chatmirror_process_cpu_seconds_total counter');
      expect(text).toContain('chatmirror_process_resident_memory_bytes');
      expect(text).toContain('chatmirror_nodejs_eventloop_lag_seconds');
    }
  });

  it('keeps one registry per app: counts do not leak between instances', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.authFailures.inc({ reason: 'expired' });
    expect(await value(a, 'chatmirror_auth_failures_total', { reason: 'expired' })).toBe(1);
    expect(await value(b, 'chatmirror_auth_failures_total', { reason: 'expired' })).toBe(0);
  });

  it('reads running and waiting from the engine at scrape time', async () => {
    const metrics = createMetrics({ engine: fakeEngine() });
    const text = await metrics.scrape();
    expect(text).toMatch(/^chatmirror_requests_running 3$/m);
    expect(text).toMatch(/^chatmirror_requests_waiting 5$/m);
  });

  it('records every decode step’s batch size and stops listening on close', async () => {
    let listener: ((rows: number) => void) | undefined;
    const engine: EngineSource = {
      ...fakeEngine(),
      onDecodeStep(l) {
        listener = l;
        return () => {
          listener = undefined;
        };
      },
    };
    const metrics = createMetrics({ engine });
    listener!(1);
    listener!(7);
    const text = await metrics.scrape();
    expect(text).toMatch(/^chatmirror_batch_size_bucket\{le="6"\} 1$/m);
    expect(text).toMatch(/^chatmirror_batch_size_bucket\{le="8"\} 2$/m);
    metrics.close();
    expect(listener).toBeUndefined();
  });
});

describe('observeGeneration', () => {
  function clock(start = 1000) {
    let t = start;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  }

  it('measures queue time, TTFT, inter-token latency and end-to-end latency', async () => {
    const metrics = createMetrics();
    const c = clock();
    const o = observeGeneration(metrics, { model: 'tiny', now: c.now });
    c.advance(250);
    o.onScheduled();
    c.advance(750);
    o.onToken();
    c.advance(40);
    o.onToken();
    c.advance(60);
    o.onToken();
    o.onFinish('stop', 12, 3);
    const m = { model: 'tiny' };
    expect(await histogramCount(metrics, 'chatmirror_queue_time_seconds', m)).toEqual({
      count: 1,
      sum: 0.25,
    });
    expect(await histogramCount(metrics, 'chatmirror_time_to_first_token_seconds', m)).toEqual({
      count: 1,
      sum: 1,
    });
    const itl = await histogramCount(metrics, 'chatmirror_inter_token_latency_seconds', m);
    expect(itl.count).toBe(2);
    expect(itl.sum).toBeCloseTo(0.1, 9);
    expect(await histogramCount(metrics, 'chatmirror_e2e_request_latency_seconds', m)).toEqual({
      count: 1,
      sum: 1.1,
    });
    expect(await value(metrics, 'chatmirror_prompt_tokens_total', m)).toBe(12);
    expect(await value(metrics, 'chatmirror_generation_tokens_total', m)).toBe(3);
    expect(await value(metrics, 'chatmirror_request_success_total', { ...m, finish_reason: 'stop' })).toBe(1);
  });

  it('uses an explicit queuedAt, and measures ITL per choice, never across choices', async () => {
    const metrics = createMetrics();
    const c = clock(5000);
    const o = observeGeneration(metrics, { model: 'm', queuedAt: 4900, choices: 2, now: c.now });
    o.onToken(0);
    o.onToken(1); // same step: not an inter-token gap
    c.advance(20);
    o.onToken(0);
    o.onToken(1);
    o.onFinish('length', 7, 2, 0);
    c.advance(30);
    o.onToken(1);
    o.onFinish('content_filter', 7, 3, 1);
    const m = { model: 'm' };
    expect((await histogramCount(metrics, 'chatmirror_time_to_first_token_seconds', m)).sum).toBeCloseTo(0.1);
    const itl = await histogramCount(metrics, 'chatmirror_inter_token_latency_seconds', m);
    expect(itl.count).toBe(3);
    expect(itl.sum).toBeCloseTo(0.07, 9);
    // The prompt is shared by the choices: prefilled and counted once.
    expect(await value(metrics, 'chatmirror_prompt_tokens_total', m)).toBe(7);
    expect(await value(metrics, 'chatmirror_generation_tokens_total', m)).toBe(5);
    expect(await histogramCount(metrics, 'chatmirror_e2e_request_latency_seconds', m)).toEqual({
      count: 1,
      sum: 0.15,
    });
    expect(await value(metrics, 'chatmirror_request_success_total', { ...m, finish_reason: 'length' })).toBe(
      1,
    );
    expect(
      await value(metrics, 'chatmirror_request_success_total', { ...m, finish_reason: 'content_filter' }),
    ).toBe(1);
  });

  it('counts an engine error as a failure, without an end-to-end latency', async () => {
    const metrics = createMetrics();
    const c = clock();
    const o = observeGeneration(metrics, { model: 'm', choices: 2, now: c.now });
    o.onToken(0);
    o.onError(0);
    o.onError(1);
    o.onFinish('stop', 1, 1, 0); // after the error: ignored
    expect(await value(metrics, 'chatmirror_request_failure_total', { model: 'm' })).toBe(1);
    expect(
      (await histogramCount(metrics, 'chatmirror_e2e_request_latency_seconds', { model: 'm' })).count,
    ).toBe(0);
    expect(
      await value(metrics, 'chatmirror_request_success_total', { model: 'm', finish_reason: 'stop' }),
    ).toBe(0);
  });

  it('records queue time and TTFT once', async () => {
    const metrics = createMetrics();
    const c = clock();
    const o = observeGeneration(metrics, { model: 'm', now: c.now });
    o.onScheduled();
    o.onScheduled();
    o.onToken();
    o.onToken();
    expect((await histogramCount(metrics, 'chatmirror_queue_time_seconds', { model: 'm' })).count).toBe(1);
    expect(
      (await histogramCount(metrics, 'chatmirror_time_to_first_token_seconds', { model: 'm' })).count,
    ).toBe(1);
  });
});

describe('HTTP metrics plugin and /metrics', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function build(options: Partial<Parameters<typeof httpMetricsPlugin>[1]> = {}) {
    const metrics = createMetrics({ engine: fakeEngine() });
    app = Fastify();
    await app.register(httpMetricsPlugin, { metrics, ...options });
    // Registered in a child context after the plugin: its hook still applies (the plugin is not encapsulated).
    await app.register(async (child) => {
      child.get('/v1/models/:model', async () => ({ ok: true }));
    });
    await app.ready();
    return metrics;
  }

  it('labels requests by route pattern, method and status, never the raw URL', async () => {
    const metrics = await build();
    await app!.inject({ method: 'GET', url: '/v1/models/tiny?x=1' });
    await app!.inject({ method: 'GET', url: '/v1/models/other' });
    await app!.inject({ method: 'GET', url: '/no/such/path/123' });
    const labels = { method: 'GET', route: '/v1/models/:model', status: '200' };
    expect(await value(metrics, 'chatmirror_http_requests_total', labels)).toBe(2);
    expect((await histogramCount(metrics, 'chatmirror_http_request_duration_seconds', labels)).count).toBe(2);
    expect(
      await value(metrics, 'chatmirror_http_requests_total', { route: UNMATCHED_ROUTE, status: '404' }),
    ).toBe(1);
    const text = await metrics.scrape();
    expect(text).not.toContain('/v1/models/tiny');
    expect(text).not.toContain('/no/such/path');
  });

  it('serves a scrape in the Prometheus text format that parses line by line', async () => {
    await build();
    await app!.inject({ method: 'GET', url: '/v1/models/tiny' });
    const res = await app!.inject({ method: 'GET', url: METRICS_PATH });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const lines = res.body.split('\n').filter((l) => l !== '');
    const names = new Set<string>();
    for (const line of lines) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
        expect(line).toMatch(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
        if (line.startsWith('# TYPE ')) names.add(line.split(' ')[2]!);
        continue;
      }
      expect(line, line).toMatch(SAMPLE_LINE);
    }
    for (const name of Object.keys(EXPECTED)) expect(names).toContain(name);
    expect(res.body).toMatch(
      /^chatmirror_http_requests_total\{method="GET",route="\/v1\/models\/:model",status="200"\} 1$/m,
    );
  });

  it('runs the guard before /metrics answers', async () => {
    await build({
      guard: async (_request, reply) => {
        await reply.code(403).send({ error: 'forbidden' });
      },
    });
    expect((await app!.inject({ method: 'GET', url: METRICS_PATH })).statusCode).toBe(403);
    expect((await app!.inject({ method: 'GET', url: '/v1/models/x' })).statusCode).toBe(200);
  });

  it('leaves /metrics off the app when expose is false', async () => {
    await build({ expose: false });
    expect((await app!.inject({ method: 'GET', url: METRICS_PATH })).statusCode).toBe(404);
  });

  it('serves /metrics alone on a separate listener', async () => {
    const metrics = createMetrics();
    metrics.rateLimited.inc({ reason: 'requests_per_minute' });
    const listener = await startMetricsListener(metrics, { host: '127.0.0.1', port: 0 });
    try {
      expect(listener.address).toBe(`http://127.0.0.1:${listener.port}`);
      const res = await fetch(`${listener.address}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(metrics.contentType);
      expect(await res.text()).toMatch(/^chatmirror_rate_limited_total\{reason="requests_per_minute"\} 1$/m);
      expect((await fetch(`${listener.address}/v1/models`)).status).toBe(404);
      const post = await fetch(`${listener.address}/metrics`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');
    } finally {
      await listener.close();
    }
  });
});
