#!/usr/bin/env node
/**
 * `chatmirror` command line: `serve` (the API), `generate` (stream one completion from a model directory to
 * the terminal), `check` (can this host and config serve the model?), `bench` (measure a running endpoint),
 * `keygen` and `token` (credentials).
 */
import { parseArgs } from 'node:util';
import { BENCH_USAGE, bench } from './bench/bench.js';
import { CHECK_USAGE, check } from './check.js';
import { BUNDLED_MODEL_DIR } from './config/paths.js';
import { Engine, EngineError } from './engine/index.js';
import type { SamplingParams } from './engine/types.js';
import { AUTH_USAGE, keygen, token } from './security/auth/commands.js';
import { serve } from './serve.js';

const USAGE = `usage:
  chatmirror serve [--config FILE] [--model DIR] [--graph FILE]
                                         serve the OpenAI-compatible API (HTTPS by default); --model and
                                         --graph set engine.modelDir and engine.graphFile (as
                                         CHATMIRROR_ENGINE_MODEL_DIR / CHATMIRROR_ENGINE_GRAPH_FILE do)
  chatmirror generate [--model DIR] [--graph FILE] [--chat TEXT | --prompt TEXT] [--max-tokens N]
                      [--temperature T] [--top-p P] [--seed N] [--stop S]...

${CHECK_USAGE}
${BENCH_USAGE}
${AUTH_USAGE}

Configuration: a YAML/JSON file (--config or CHATMIRROR_CONFIG) and CHATMIRROR_<SECTION>_<KEY> variables.`;

function number(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new EngineError(
      'invalid_generation_params',
      `--${name} must be a number in [${min}, ${max}], got ${raw}`,
    );
  }
  return n;
}

async function generate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: BUNDLED_MODEL_DIR },
      graph: { type: 'string' },
      chat: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
    },
    strict: true,
  });
  if (values.chat !== undefined && values.prompt !== undefined) {
    throw new EngineError('invalid_generation_params', 'give --chat or --prompt, not both');
  }
  const engine = await Engine.load(
    values.model,
    values.graph === undefined ? {} : { graphFile: values.graph },
  );
  try {
    const promptIds =
      values.prompt !== undefined
        ? engine.encodeText(values.prompt)
        : engine.encodeChat([{ role: 'user', content: values.chat ?? 'Continue: In the beginning' }]);
    const params: SamplingParams = {
      maxTokens: number('max-tokens', values['max-tokens'], 64, 1, engine.info.contextLength),
      temperature: number('temperature', values.temperature, 0.7, 0, 2),
      topP: number('top-p', values['top-p'], 0.95, Number.MIN_VALUE, 1),
      topK: 0,
      minP: 0,
      repetitionPenalty: 1.1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      logitBias: {},
      seed:
        values.seed === undefined ? undefined : number('seed', values.seed, 0, 0, Number.MAX_SAFE_INTEGER),
      stop: values.stop ?? [],
      ignoreEos: false,
      logprobs: false,
      topLogprobs: 0,
    };
    const started = performance.now();
    let firstToken = 0;
    for await (const event of engine.submit({ promptIds, params })) {
      if (event.type === 'token') {
        firstToken ||= performance.now();
        process.stdout.write(event.text);
      } else if (event.type === 'finish') {
        process.stdout.write(`${event.text}\n`);
        const seconds = (performance.now() - firstToken) / 1000;
        process.stderr.write(
          `[${engine.info.name}: ${event.promptTokens} prompt + ${event.completionTokens} completion tokens, ` +
            `finish_reason=${event.finishReason}, first token ${(firstToken - started).toFixed(0)} ms, ` +
            `${((event.completionTokens - 1) / seconds).toFixed(1)} tokens/s]\n`,
        );
      } else {
        throw new Error(event.message);
      }
    }
  } finally {
    await engine.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: 'string', short: 'c' },
          model: { type: 'string' },
          graph: { type: 'string' },
        },
        strict: true,
      });
      // The flags are the environment variables' shorthand, so they override the config file as those do.
      const env = { ...process.env };
      if (values.model !== undefined) env.CHATMIRROR_ENGINE_MODEL_DIR = values.model;
      if (values.graph !== undefined) env.CHATMIRROR_ENGINE_GRAPH_FILE = values.graph;
      // serve() returns once listening; it handles SIGTERM/SIGINT itself and lets the process exit when drained.
      await serve({ configFile: values.config, env });
      return;
    }
    case 'generate':
      return generate(rest);
    case 'bench':
      await bench(rest);
      return;
    case 'check':
      return check(rest);
    case 'keygen':
      return keygen(rest);
    case 'token':
      return token(rest);
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exitCode = command === undefined || command === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: Error & { exitCode?: number }) => {
  process.stderr.write(`chatmirror: ${err.message}\n`);
  process.exitCode = err.exitCode ?? 1;
});
