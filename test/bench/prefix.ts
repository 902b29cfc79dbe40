/**
 * `npx tsx test/bench/prefix.ts` — time to first token with and without a shared prompt prefix (issue 12: the
 * second request with a repeated system prompt should see ≤ 0.5× the first's TTFT). Prints figures and ratios,
 * asserts nothing (timings on a shared machine are noisy); the load average is printed beside them.
 *
 * Each round sends, to one engine, a conversation never seen before (cold: the whole prompt is prefilled) and
 * then a different question under the same system prompt (warm: the prefix cache serves the shared positions),
 * and a third turn that resends the whole conversation so far (multi-turn: only the new turn runs).
 *
 * Options (env): PREFIX_MODEL_DIR (default ~/.cache/chatmirror/models/smollm2-135m-instruct), PREFIX_GRAPH
 * (onnx/model.onnx), PREFIX_ROUNDS (5).
 */
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import type { ChatMessage } from '../../service/engine/chat-template.js';
import { Engine } from '../../service/engine/index.js';
import { params } from '../helpers/model.js';

const cache = process.env.CHATMIRROR_CACHE ?? join(homedir(), '.cache/chatmirror');
const modelDir = process.env.PREFIX_MODEL_DIR ?? join(cache, 'models/smollm2-135m-instruct');
const graphFile = process.env.PREFIX_GRAPH ?? 'onnx/model.onnx';
const rounds = Number(process.env.PREFIX_ROUNDS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function ttft(engine: Engine, messages: ChatMessage[]): Promise<{ ms: number; text: string }> {
  const t0 = performance.now();
  let first = 0;
  let text = '';
  for await (const event of engine.submit({
    promptIds: engine.encodeChat(messages),
    params: params({ maxTokens: 16 }),
  })) {
    if (event.type === 'token') {
      first ||= performance.now();
      text += event.text;
    } else if (event.type === 'error') throw new Error(event.message);
  }
  return { ms: first - t0, text };
}

async function main(): Promise<void> {
  const engine = await Engine.load(modelDir, { graphFile, maxBatchSize: 1 });
  const cold: number[] = [];
  const warm: number[] = [];
  const turn: number[] = [];
  let promptTokens = { cold: 0, turn: 0 };
  try {
    for (let r = 0; r < rounds; r++) {
      // A system prompt no earlier round used, so the first request of a round finds nothing to reuse.
      const coldSystem: ChatMessage[] = [
        { role: 'system', content: `Round ${r}. ${'You are terse. '.repeat(3)}` },
      ];
      const q1: ChatMessage[] = [...coldSystem, { role: 'user', content: `What is ${r} + ${r + 1}?` }];
      cold.push((await ttft(engine, q1)).ms);
      const q2: ChatMessage[] = [...coldSystem, { role: 'user', content: `Name a colour, number ${r}.` }];
      const a2 = await ttft(engine, q2);
      warm.push(a2.ms);
      const q3: ChatMessage[] = [
        ...q2,
        { role: 'assistant', content: a2.text },
        { role: 'user', content: 'And another?' },
      ];
      turn.push((await ttft(engine, q3)).ms);
      promptTokens = { cold: engine.encodeChat(q1).length, turn: engine.encodeChat(q3).length };
    }
  } finally {
    await engine.close();
  }
  const c = median(cold);
  console.log(
    `${engine.info.name} (${graphFile}), ${rounds} rounds, medians; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(`cold   TTFT ${c.toFixed(1)} ms (${promptTokens.cold} prompt tokens, nothing shared)`);
  console.log(
    `warm   TTFT ${median(warm).toFixed(1)} ms, ${(median(warm) / c).toFixed(2)}× cold (same system prompt, new question)`,
  );
  console.log(
    `turn 2 TTFT ${median(turn).toFixed(1)} ms, ${(median(turn) / c).toFixed(2)}× cold (${promptTokens.turn} prompt tokens, the conversation resent)`,
  );
}

await main();
