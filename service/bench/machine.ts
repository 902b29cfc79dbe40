/**
 * The machine a benchmark ran on, written beside its figures: on a shared machine the figures mean little
 * without the CPUs, their model and the load average before and after (bench:serve, bench:compare).
 */
import { arch, availableParallelism, cpus, loadavg, platform, release, totalmem } from 'node:os';

export function describeMachine(loadBefore: number[]): Record<string, string | number | number[]> {
  const round = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    loadAverageBefore: round(loadBefore),
    loadAverageAfter: round(loadavg()),
  };
}
