/** The benchmark timer's command line is one `chatmirror bench` accepts, with the fixed scenario in it. */
import { describe, expect, it } from 'vitest';
import { parseStackConfig } from '../../../infra/config.js';
import { renderBenchmarkService } from '../../../infra/render/benchmarks.js';
import { parseBenchArgs } from '../../../service/bench/args.js';

describe('the scheduled run', () => {
  it('passes flags the parser takes: the stack load levels and the fixed scenario', () => {
    const bench = parseStackConfig({
      'chatmirror:profile': 'staging',
      'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
      'chatmirror:monitoring': { enabled: false },
    }).benchmarks;
    const unit = renderBenchmarkService({
      stack: 'prod',
      bench: { ...bench, concurrency: [1, 4, 8], requests: 16, maxTokens: 48 },
      image: `registry.example/chatmirror@sha256:${'b'.repeat(64)}`,
      network: 'chatmirror-prod',
      endpoint: 'https://chatmirror:8443',
      user: '10001:10001',
      caFile: '/srv/ca.crt',
      tokenFile: '/srv/token',
      historyDir: '/srv/history',
      textfileDir: '/srv/textfile',
      modelId: 'chat-1b',
    });
    const command = unit.split('\nExecStart=')[1]!.split('\nExecStartPost=')[0]!.replaceAll('\\\n', ' ');
    const argv = command
      .split(/ +bench +/)[1]!
      .trim()
      .split(/\s+/);
    expect(parseBenchArgs(argv)).toMatchObject({
      url: 'https://chatmirror:8443',
      model: 'chat-1b',
      load: { kind: 'concurrency', levels: [1, 4, 8] },
      stop: { requests: 16 },
      maxTokens: 48,
      warmup: 2,
      prompts: { kind: 'synthetic', inputTokens: 32 },
      seed: 0,
      progress: 'lines',
      caFile: '/run/chatmirror/ca.crt',
      tokenFile: '/run/chatmirror/bench-token',
      jsonDir: '/results',
      textfile: '/textfile/.chatmirror_bench.prom.tmp',
    });
  });
});
