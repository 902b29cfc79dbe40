/**
 * `npm run bench:compare` — chatmirror side by side with its in-process baselines and with llama.cpp on the same
 * weights, on this machine (issue 12): one stream (raw onnxruntime-node loop, the engine, Transformers.js,
 * llama-server at F32 / Q8_0 / the original Q4_1) and servers at 16 concurrent (chatmirror serve over HTTPS
 * against llama-server -np 16). Interleaved repetitions, medians, ratios against llama.cpp at matched precision;
 * prints the Markdown and writes results/compare.{json,md,svg}. Asserts nothing about timings; never part of
 * `npm test` or CI. Settings: `npm run bench:compare -- --help` (COMPARE_* variables, see options.ts).
 */
import '../../service/engine/ort-env.js';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSvg } from '../../service/bench/chart.js';
import { describeMachine } from '../../service/bench/machine.js';
import { writeAtomically } from '../../service/bench/output.js';
import { readManifest } from '../../service/engine/manifest.js';
import { BINDING_PATH } from '../../service/engine/ort-native.js';
import {
  type Gguf,
  gguf,
  type LlamaCpp,
  llamaCpp,
  llamaTokenize,
  startLlamaServer,
} from './compare/llama-cpp.js';
import {
  COMPARE_HELP,
  type CompareOptions,
  type GgufType,
  readOptions,
  selected,
} from './compare/options.js';
import { comparePrompt } from './compare/prompt.js';
import {
  type CompareReport,
  chartSpec,
  commonPrefix,
  type LevelLoad,
  renderMarkdown,
  serverRows,
  singleRows,
} from './compare/report.js';
import { runServers, startServers } from './compare/servers.js';
import { contextPerSlot, GRAPHS, runSingle, singleSystems } from './compare/single.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const round2 = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);

function packageVersion(name: string): string {
  const file = join(REPO_ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** CPU features that decide which kernels onnxruntime and ggml pick. */
function cpuFlags(): string {
  const line = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '';
  const have = new Set(line.split(' '));
  const wanted = ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'amx_tile'];
  return wanted.filter((f) => have.has(f)).join(' ');
}

function git(): CompareReport['git'] {
  const run = (args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trimEnd();
  // Porcelain lines are `XY path`: the status letters may start with a space, so nothing is trimmed from the front.
  const modified = run(['status', '--porcelain', '--untracked-files=no'])
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.slice(3));
  // Which uncommitted state was measured: the same hash means the same working-tree changes.
  const diff = execFileSync('git', ['diff', 'HEAD'], { cwd: REPO_ROOT, maxBuffer: 256 * 2 ** 20 });
  const diffSha256 = modified.length === 0 ? null : createHash('sha256').update(diff).digest('hex');
  return { commit: run(['rev-parse', 'HEAD']), modified, diffSha256 };
}

function ensureModel(options: CompareOptions): void {
  if (Object.values(GRAPHS).every((g) => existsSync(join(options.modelDir, g)))) return;
  const build = join(REPO_ROOT, 'test/fixtures/models/build.sh');
  process.stderr.write(
    `SmolLM2 missing at ${options.modelDir}; building it with ${build} smollm2 (~15 min)\n`,
  );
  execFileSync('bash', [build, 'smollm2', '--out', options.modelDir], { stdio: 'inherit' });
}

const fmt = (x: number | null) => (x === null ? '—' : x.toFixed(1));

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(COMPARE_HELP);
    return;
  }
  const options = readOptions(process.env, REPO_ROOT);
  const timestamp = new Date().toISOString();
  const loadAtStart = loadavg();
  const gitAtStart = git();
  ensureModel(options);
  const prompt = await comparePrompt(options.modelDir);
  const manifest = await readManifest(options.modelDir);
  const notes: string[] = [];
  if (
    commonPrefix(prompt.ids, prompt.textIds) !== prompt.ids.length ||
    prompt.textIds.length !== prompt.ids.length
  )
    notes.push(
      `The prompt text encodes as a raw prompt to ${prompt.textIds.length} tokens, not the template's ${prompt.ids.length}: the server level's prompt differs from the single stream's.`,
    );

  const levels = options.levels;
  const wanted = (['F32', 'Q8_0', 'Q4_1'] as GgufType[]).filter((t) =>
    levels.some((l) => (l === 'single' || t !== 'Q4_1') && selected(options, `llama-${t.toLowerCase()}`)),
  );
  let llama: { tools: LlamaCpp; ggufs: Gguf[] } | undefined;
  if (wanted.length > 0) {
    const tools = llamaCpp();
    const dir = join(options.cache, 'peers/gguf');
    const ggufs: Gguf[] = [];
    for (const t of wanted) ggufs.push(await gguf(tools, options.sourceGguf, t, dir));
    llama = { tools, ggufs };
    // Whether llama-server reads the prompt text as our tokenizer does (the server level sends text).
    const probe = await startLlamaServer(tools, {
      model: ggufs[0]!.path,
      slots: 1,
      contextPerSlot: contextPerSlot(prompt.ids.length, options.newTokens),
    });
    try {
      const theirs = await llamaTokenize(probe.url, prompt.text);
      notes.push(
        commonPrefix(theirs, prompt.textIds) === prompt.textIds.length &&
          theirs.length === prompt.textIds.length
          ? `llama-server tokenizes the prompt text to the same ${theirs.length} ids as our tokenizer.`
          : `llama-server tokenizes the prompt text to ${theirs.length} ids, ours to ${prompt.textIds.length} (first ${commonPrefix(theirs, prompt.textIds)} equal): the server level's prompts differ.`,
      );
    } finally {
      await probe.stop();
    }
  }

  const versions: Record<string, string> = {
    node: process.version,
    'onnxruntime-node': packageVersion('onnxruntime-node'),
    '@huggingface/transformers': packageVersion('@huggingface/transformers'),
    // engine.runtime auto, as the engine and chatmirror serve run here: the binding where it is built.
    'chatmirror engine.runtime': existsSync(BINDING_PATH)
      ? 'native (service/native binding)'
      : 'onnxruntime-node (the binding is not built)',
  };
  if (llama !== undefined) versions['llama.cpp'] = `${llama.tools.version} (${llama.tools.sdist} sdist)`;

  const log = (line: string) => process.stderr.write(`${line}\n`);
  let single: CompareReport['single'] = null;
  if (levels.includes('single')) {
    const before = round2(loadavg());
    log(`single stream: loading systems (load average ${before.join(' ')})`);
    const systems = await singleSystems(options, prompt, llama);
    for (const s of systems) Object.assign(versions, s.versions);
    try {
      const runs = await runSingle(systems, options, (id, rep, r) =>
        log(
          `  rep ${rep + 1}/${options.repeats} ${id.padEnd(12)} ${r.tokensPerSecond.toFixed(1).padStart(6)} tok/s  ` +
            `${r.cpuMsPerToken.toFixed(1).padStart(6)} CPU ms/token  first token ${r.firstTokenMs.toFixed(0)} ms`,
        ),
      );
      const level: LevelLoad = { loadAverageBefore: before, loadAverageAfter: round2(loadavg()) };
      single = { ...level, rows: singleRows(systems, runs, prompt.decode) };
    } finally {
      await Promise.all(systems.map((s) => s.close()));
    }
  }

  let server: CompareReport['server'] = null;
  if (levels.includes('server')) {
    const before = round2(loadavg());
    log(`servers at ${options.concurrency} concurrent: starting (load average ${before.join(' ')})`);
    const level = await startServers(options, prompt, llama);
    try {
      const runs = await runServers(level, options, (id, rep, r) =>
        log(
          `  rep ${rep + 1}/${options.repeats} ${id.padEnd(12)} ${r.outputTokensPerSecond.toFixed(1).padStart(6)} tok/s  ` +
            `ITL p99 ${fmt(r.itlP99Ms)} ms  TTFT p50 ${fmt(r.ttftP50Ms)} ms  ${r.cpuMsPerOutputToken.toFixed(1)} CPU ms/token  ` +
            `${r.completed} ok ${r.failed} failed ${r.resent} resent, ${r.meanPromptTokens.toFixed(1)} prompt tokens`,
        ),
      );
      const load: LevelLoad = { loadAverageBefore: before, loadAverageAfter: round2(loadavg()) };
      server = { ...load, rows: serverRows(level.systems, runs) };
      for (const row of server.rows) {
        const resent = row.runs.map((x) => x.resent);
        if (resent.some((n) => n > 0))
          notes.push(
            `${row.id}: the client sent ${resent.join(', ')} requests again (by repetition) because the server closed the connection before answering (service/bench/client.ts says when it does).`,
          );
        const failed = row.runs.map((x) => x.failed);
        if (failed.some((n) => n > 0))
          notes.push(
            `${row.id}: ${failed.join(', ')} requests failed (by repetition); see the JSON for why.`,
          );
        const counted = row.runs[0]?.meanPromptTokens;
        if (counted !== undefined && counted !== prompt.ids.length)
          notes.push(
            `${row.id} counted ${counted} prompt tokens per request (usage.prompt_tokens), not ${prompt.ids.length}.`,
          );
      }
    } finally {
      await level.close();
    }
  }

  // The code and the model directory can change while a run is under way (someone working on them): say so.
  const gitAtEnd = git();
  if (JSON.stringify(gitAtEnd) !== JSON.stringify(gitAtStart))
    notes.push(
      `The working tree changed during the run (git ${gitAtStart.commit.slice(0, 12)} at the start, ${gitAtEnd.commit.slice(0, 12)} at the end, uncommitted: ${gitAtEnd.modified.join(', ') || 'none'}); servers started later run the later code.`,
    );
  const manifestAfter = await readManifest(options.modelDir);
  for (const g of Object.values(GRAPHS))
    if (manifestAfter.get(g) !== manifest.get(g))
      notes.push(
        `${g} changed during the run (sha256 ${manifest.get(g)} at the start, ${manifestAfter.get(g)} at the end).`,
      );
  notes.push(...standingNotes(options));
  const report: CompareReport = {
    version: 1,
    timestamp,
    model: {
      name: basename(options.modelDir),
      dir: options.modelDir,
      graphs: Object.fromEntries(Object.values(GRAPHS).map((g) => [g, manifest.get(g) ?? 'unlisted'])),
    },
    ggufs: llama?.ggufs ?? [],
    prompt: { messages: prompt.messages, text: prompt.text, ids: prompt.ids },
    scenario: {
      newTokens: options.newTokens,
      repeats: options.repeats,
      concurrency: options.concurrency,
      serverRequests: options.serverRequests,
      greedy: 'greedy (argmax), EOS masked until the last token',
    },
    versions,
    machine: { ...describeMachine(loadAtStart), cpuFlags: cpuFlags() },
    git: gitAtStart,
    single,
    server,
    notAvailable: NOT_AVAILABLE,
    notes,
  };
  const markdown = renderMarkdown(report);
  process.stdout.write(markdown);
  await mkdir(options.outDir, { recursive: true });
  const files = ['compare.json', 'compare.md', 'compare.svg'].map((f) => join(options.outDir, f));
  await writeAtomically(files[0]!, `${JSON.stringify(report, null, 2)}\n`);
  await writeAtomically(files[1]!, markdown);
  await writeAtomically(files[2]!, await renderSvg(chartSpec(report)));
  for (const f of files) process.stdout.write(`wrote ${f}\n`);
}

/** What this comparison leaves out, and why: issue 12 asks for both. */
const NOT_AVAILABLE = [
  {
    what: 'the 32M bench model',
    why: 'building it needs torch (test/fixtures/models/build.sh bench), which cannot be installed cheaply here; only SmolLM2-135M-Instruct is compared',
  },
  {
    what: "onnxruntime-genai's model builder",
    why: 'it converts through torch, which cannot be installed cheaply here (its generation loop is measured, on our own graphs)',
  },
];

function standingNotes(options: CompareOptions): string[] {
  return [
    "tok/s is new tokens / wall time of one request (prefill and every new token); CPU ms per token is the CPU time spent meanwhile / new tokens: process.cpuUsage() (every thread of this process, the engine's inference worker included) for the in-process systems, utime + stime of the server's process tree from /proc for the servers (10 ms ticks).",
    'The engine is loaded afresh for each repetition and warmed on the prompt reversed, so that its prefix cache (which would serve a repeated prompt) does not spare it the prefill the other systems pay.',
    'First token ms for llama.cpp is its own prompt_ms (the /completion request is not streamed); for the others it is from the call to the first token.',
    'F32 holds the same weights as our fp32 graph (both are the Q4_1 GGUF dequantised); Q8_0 is the Q4_1 weights requantised by llama-quantize, and docs/models.md says how our int8 graph relates to it. The kernels differ, so greedy tokens are compared with the raw loop on the graph of the same precision, and a GGUF row may part from it early.',
    `Servers: every request has the same prompt text, and both servers keep their prompt caches on as shipped (chatmirror's prefix reuse, llama-server's cache_prompt), so most of each prefill is served from cache on both. The client runs in this process on the same ${availableParallelism()} cores; only chatmirror's side speaks TLS.`,
    `llama-server runs with -t ${availableParallelism()} (every core). Where other work shares the cores, one of its runs can fall to a tenth of its speed while its CPU time per token grows as much (seen on the 2-core development machine, where -t 1 did not do this): the per-repetition columns show such runs. COMPARE_LLAMA_ARGS="-t 1" trades that for one core's speed.`,
    `Each server gets one unmeasured round of ${options.concurrency} requests first; greedy is each server's default here (CHATMIRROR_MODELS_DEFAULTS_TEMPERATURE=0, llama-server --temp 0).`,
  ];
}

main().catch((err: Error) => {
  process.stderr.write(`bench:compare: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
