/**
 * Progress on stderr (stdout carries the results): a cli-progress bar on a terminal, plain lines elsewhere (a
 * CI log or the journal, where a redrawn bar is noise), at most one every LINE_EVERY_MS and one at each level's end.
 */
import { SingleBar } from 'cli-progress';
import type { Progress as Mode } from './args.js';

const LINE_EVERY_MS = 5_000; // 5 seconds

export interface Progress {
  /** A level starts: `total` requests, or a duration in seconds. */
  start(label: string, total: { requests: number } | { durationSeconds: number }): void;
  done(ok: boolean): void;
  end(): void;
}

export function createProgress(mode: Mode, stream: NodeJS.WriteStream = process.stderr): Progress {
  const chosen = mode === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : mode;
  if (chosen === 'none') return { start() {}, done() {}, end() {} };
  let label = '';
  let total: { requests: number } | { durationSeconds: number } = { requests: 0 };
  let ok = 0;
  let failed = 0;
  let started = 0;
  const elapsed = () => (performance.now() - started) / 1000;
  const value = () => ('requests' in total ? ok + failed : Math.min(elapsed(), total.durationSeconds));
  const of = () => ('requests' in total ? total.requests : total.durationSeconds);

  if (chosen === 'bar') {
    const bar = new SingleBar(
      {
        stream,
        format: '{label} [{bar}] {value}/{total}{unit}  ok {ok}  failed {failed}',
        hideCursor: true,
        clearOnComplete: false,
      },
      undefined,
    );
    let running = false;
    return {
      start(name, size) {
        if (running) bar.stop();
        label = name;
        total = size;
        ok = failed = 0;
        started = performance.now();
        running = true;
        bar.start(of(), 0, { label, ok, failed, unit: 'requests' in total ? '' : ' s' });
      },
      done(success) {
        if (success) ok += 1;
        else failed += 1;
        bar.update(Math.round(value()), { label, ok, failed });
      },
      end() {
        if (!running) return;
        bar.update(of(), { label, ok, failed });
        bar.stop();
        running = false;
      },
    };
  }

  let lastLine = 0;
  const line = () => {
    const unit = 'requests' in total ? ` of ${total.requests} requests` : ` s of ${total.durationSeconds} s`;
    stream.write(`bench ${label}: ${Math.floor(value())}${unit}, ${ok} ok, ${failed} failed\n`);
    lastLine = performance.now();
  };
  let open = false;
  return {
    start(name, size) {
      if (open) line();
      label = name;
      total = size;
      ok = failed = 0;
      started = lastLine = performance.now();
      open = true;
      stream.write(`bench ${label}: started\n`);
    },
    done(success) {
      if (success) ok += 1;
      else failed += 1;
      if (performance.now() - lastLine >= LINE_EVERY_MS) line();
    },
    end() {
      if (open) line();
      open = false;
    },
  };
}
