/**
 * The `chatmirror` command line (service/cli.ts runs it; tests call `runCli` directly): `serve` (the API), `generate` (stream one completion from a model directory to
 * the terminal), `check` (can this host and config serve the model?), `bench` (measure a running endpoint),
 * `keygen` and `token` (credentials). Every command answers `--help` (its options and an example, on stdout,
 * exit 0); a bad flag is a UsageError: one line naming it, then the command's usage, exit 2.
 */
import { BENCH_USAGE, bench } from './bench/bench.js';
import { CHECK_HELP, CHECK_USAGE, check } from './check.js';
import { BUNDLED_MODEL_DIR } from './config/paths.js';
import { Engine } from './engine/index.js';
import type { SamplingParams } from './engine/types.js';
import { modelDirProblem } from './model-dir.js';
import { nodeVersionNotice } from './node-version.js';
import {
  AUTH_USAGE,
  KEYGEN_HELP,
  KEYGEN_USAGE,
  keygen,
  parsedArgs,
  TOKEN_HELP,
  TOKEN_USAGE,
  token,
  UsageError,
} from './security/auth/commands.js';
import { serve } from './serve.js';

const SERVE_USAGE = `  chatmirror serve [--config FILE] [--model DIR] [--graph FILE]
                                         serve the OpenAI-compatible API (HTTPS by default)`;
const GENERATE_USAGE = `  chatmirror generate [--model DIR] [--graph FILE] [--chat TEXT | --prompt TEXT] [--max-tokens N]
                      [--temperature T] [--top-p P] [--seed N] [--stop S]...
                                         stream one completion from a model directory to the terminal`;

const USAGE = `usage: chatmirror COMMAND [OPTIONS]   (chatmirror COMMAND --help for one command's options and an example)

${SERVE_USAGE}
${GENERATE_USAGE}
${CHECK_USAGE}
${BENCH_USAGE}
${AUTH_USAGE}

Configuration: a YAML/JSON file (--config or CHATMIRROR_CONFIG) and CHATMIRROR_<SECTION>_<KEY> variables
(docs/configuration.md).`;

const SERVE_HELP = `usage: chatmirror serve [--config FILE] [--model DIR] [--graph FILE]

Serves the OpenAI-compatible API, HTTPS by default, and prints how to call it: the base URL, the certificate to
trust (export CHATMIRROR_CA=…) and, when no credentials are configured, a one-hour development token (export
CHATMIRROR_TOKEN=…). SIGTERM/SIGINT drain and stop it; SIGHUP re-reads the TLS certificate and the JWKS.

options:
  -c, --config FILE   YAML or JSON config file (default: $CHATMIRROR_CONFIG); CHATMIRROR_<SECTION>_<KEY>
                      environment variables override it
  --model DIR         model directory: engine.modelDir, as CHATMIRROR_ENGINE_MODEL_DIR (default: the bundled
                      test model)
  --graph FILE        graph inside it: engine.graphFile, as CHATMIRROR_ENGINE_GRAPH_FILE (default
                      onnx/model.onnx; onnx/model_quantized.onnx for int8)
  -h, --help          this help

example:
  chatmirror serve --model ~/.cache/chatmirror/models/smollm2-135m-instruct --graph onnx/model_quantized.onnx`;

const GENERATE_HELP = `usage: chatmirror generate [--model DIR] [--graph FILE] [--chat TEXT | --prompt TEXT] [options]

Loads a model directory in this process (no server) and streams one completion to stdout; token counts, the
finish reason, time to first token and decode speed go to stderr.

options:
  --model DIR         model directory (default: the bundled test model)
  --graph FILE        graph inside it (default onnx/model.onnx)
  --chat TEXT         one user message, rendered with the model's chat template (default "Continue: In the
                      beginning")
  --prompt TEXT       raw text instead of a chat message
  --max-tokens N      tokens to generate, 1 to the model's context (default 64)
  --temperature T     0 to 2; 0 is greedy (default 0.7)
  --top-p P           (0, 1] (default 0.95)
  --seed N            integer ≥ 0: the same seed gives the same output
  --stop S            stop string, never printed; repeatable
  -h, --help          this help

example:
  chatmirror generate --chat "Continue: 床前明月光" --temperature 0 --max-tokens 40`;

interface Command {
  /** Printed after a UsageError. */
  usage: string;
  /** Printed for --help; undefined where the command prints its own. */
  help?: string;
  run(argv: string[]): Promise<unknown>;
}

const COMMANDS: Record<string, Command> = {
  serve: { usage: SERVE_USAGE, help: SERVE_HELP, run: serveCommand },
  generate: { usage: GENERATE_USAGE, help: GENERATE_HELP, run: generate },
  check: { usage: CHECK_USAGE, help: CHECK_HELP, run: (argv) => check(argv) },
  // bench parses its own --help (service/bench/args.ts).
  bench: { usage: BENCH_USAGE, run: (argv) => bench(argv) },
  keygen: { usage: KEYGEN_USAGE, help: KEYGEN_HELP, run: (argv) => keygen(argv) },
  token: { usage: TOKEN_USAGE, help: TOKEN_HELP, run: (argv) => token(argv) },
};

function number(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  }
  return n;
}

async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parsedArgs(argv, {
    config: { type: 'string', short: 'c' },
    model: { type: 'string' },
    graph: { type: 'string' },
  });
  // The flags are the environment variables' shorthand, so they override the config file as those do.
  const env = { ...process.env };
  if (values.model !== undefined) env.CHATMIRROR_ENGINE_MODEL_DIR = values.model;
  if (values.graph !== undefined) env.CHATMIRROR_ENGINE_GRAPH_FILE = values.graph;
  // serve() returns once listening; it handles SIGTERM/SIGINT itself and lets the process exit when drained.
  await serve({ configFile: values.config, env });
}

async function generate(argv: string[]): Promise<void> {
  const { values } = parsedArgs(argv, {
    model: { type: 'string', default: BUNDLED_MODEL_DIR },
    graph: { type: 'string' },
    chat: { type: 'string' },
    prompt: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
  });
  if (values.chat !== undefined && values.prompt !== undefined) {
    throw new UsageError('give --chat or --prompt, not both');
  }
  // Flags that need no model are checked before loading one; --max-tokens needs its context.
  const temperature = number('temperature', values.temperature, 0.7, 0, 2);
  const topP = number('top-p', values['top-p'], 0.95, Number.MIN_VALUE, 1);
  const seed =
    values.seed === undefined ? undefined : number('seed', values.seed, 0, 0, Number.MAX_SAFE_INTEGER);
  const missing = await modelDirProblem(values.model, '--model');
  if (missing !== undefined) throw new Error(missing);
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
      temperature,
      topP,
      topK: 0,
      minP: 0,
      repetitionPenalty: 1.1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      logitBias: {},
      seed,
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

const wantsHelp = (argv: string[]) => argv.includes('--help') || argv.includes('-h');

export interface CliOutput {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/**
 * Runs one command line; resolves with the exit status to set (a command that keeps running, like serve, has
 * resolved once it is listening). 0 done or help, 1 the command failed, 2 a usage error.
 */
export async function runCli(argv: string[], io: CliOutput = process, nodeVersion = process.versions.node) {
  const notice = nodeVersionNotice(nodeVersion);
  if (notice !== undefined) io.stderr.write(`chatmirror: ${notice}\n`);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    io.stderr.write(`chatmirror: unknown command "${name}"\n\n${USAGE}\n`);
    return 2;
  }
  if (command.help !== undefined && wantsHelp(rest)) {
    io.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`chatmirror ${name}: ${err.message}\n\nusage:\n${command.usage}\n`);
      return err.exitCode;
    }
    const { message, exitCode } = err as Error & { exitCode?: number };
    io.stderr.write(`chatmirror: ${message}\n`);
    return exitCode ?? 1;
  }
}
