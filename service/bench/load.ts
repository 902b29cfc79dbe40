/**
 * Drives one load level: a closed loop (c clients, each sending its next request when the last ends) or an open
 * loop (requests sent at seeded gamma/Poisson arrival times, optionally capped at N in flight: an arrival that
 * finds no slot waits for one, as vLLM's --max-concurrency does). A level ends after its request count, or once
 * its duration has passed (no request is started after it; those in flight are waited for and counted).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Stop } from './args.js';
import { gapSampler } from './arrivals.js';
import type { RequestResult } from './client.js';

export type LevelShape =
  | { kind: 'concurrency'; concurrency: number }
  | { kind: 'rate'; rate: number; burstiness: number; maxConcurrency?: number | undefined };

export interface LevelRun {
  results: RequestResult[];
  /** Seconds from the first send to the last response. */
  durationSeconds: number;
  maxInFlight: number;
}

export interface LevelDriver {
  shape: LevelShape;
  stop: Stop;
  seed: number;
  /** Sends the level's request i. */
  send(i: number): Promise<RequestResult>;
  onResult?: ((result: RequestResult) => void) | undefined;
}

export async function runLevel(driver: LevelDriver): Promise<LevelRun> {
  const results: RequestResult[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let sent = 0;
  const started = performance.now();
  let lastResponse = started;
  const elapsed = () => (performance.now() - started) / 1000;
  const mayStart = () =>
    'requests' in driver.stop ? sent < driver.stop.requests : elapsed() < driver.stop.durationSeconds;
  const one = async () => {
    const i = sent;
    sent += 1;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const result = await driver.send(i);
    inFlight -= 1;
    lastResponse = performance.now();
    results.push(result);
    driver.onResult?.(result);
  };

  if (driver.shape.kind === 'concurrency') {
    const client = async () => {
      while (mayStart()) await one();
    };
    const clients =
      'requests' in driver.stop
        ? Math.min(driver.shape.concurrency, driver.stop.requests)
        : driver.shape.concurrency;
    await Promise.all(Array.from({ length: clients }, client));
  } else {
    const { rate, burstiness, maxConcurrency } = driver.shape;
    const gap = gapSampler(rate, burstiness, driver.seed);
    const slots = new Slots(maxConcurrency ?? Number.POSITIVE_INFINITY);
    const pending: Promise<void>[] = [];
    let at = 0; // seconds after the start at which the next request arrives
    while ('requests' in driver.stop ? sent < driver.stop.requests : at < driver.stop.durationSeconds) {
      const wait = started + at * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      await slots.acquire();
      if (!('requests' in driver.stop) && elapsed() >= driver.stop.durationSeconds) {
        slots.release();
        break;
      }
      pending.push(one().finally(() => slots.release()));
      at += gap();
    }
    await Promise.all(pending);
  }
  return { results, durationSeconds: (lastResponse - started) / 1000, maxInFlight };
}

/** A counting semaphore: acquire() waits while `limit` holders have not released. */
class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.held < this.limit) {
      this.held += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held -= 1;
  }
}
