/**
 * What each request asks. Synthetic prompts are made of common English words that the BPE tokenizers of the
 * usual model families (GPT-2, Llama, SmolLM, Qwen) each encode as one token with its leading space, so N words
 * come to about N prompt tokens on any peer without the client holding its tokenizer; the exact count is the
 * server's usage.prompt_tokens, which the report shows. The words are drawn afresh for every request (seeded),
 * so that a prefix cache cannot make later requests cheaper than the first, as vLLM's random dataset intends.
 */
import { readFile } from 'node:fs/promises';
import { randomInt, randomLcg } from 'd3-random';
import { UsageError } from '../security/auth/commands.js';
import type { PromptSource } from './args.js';

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they ' +
  'you were her she there one all we their can has been more if will would so what when up out into no time ' +
  'about only new some could these two may first then do any like my now over such our man me even most made ' +
  'after also did many before must through back years where much your way well down should because each just ' +
  'those people how too little state good very make world still own see men work long here get both between ' +
  'life being under never day same another know while last might us great old year off come since against go ' +
  'came right used take three'
).split(' ');

export interface Prompt {
  text: string;
  /** Words in a synthetic prompt (its intended token count); undefined for a prompt from a file. */
  words?: number | undefined;
}

/** The prompt of request i (warmup requests first): deterministic for a seed. */
export type PromptPicker = (i: number) => Prompt;

export async function promptPicker(source: PromptSource, seed: number): Promise<PromptPicker> {
  if (source.kind === 'synthetic') return (i) => syntheticPrompt(source.inputTokens, seed, i);
  const prompts = parsePromptFile(await readPromptFile(source.file), source.file);
  return (i) => prompts[i % prompts.length]!;
}

export function syntheticPrompt(words: number, seed: number, i: number): Prompt {
  // One generator per request, seeded from (seed, i), so request i's prompt does not depend on the order in
  // which the load loop asked for the others.
  const source = randomLcg(mix(seed, i) / 2 ** 32);
  const pick = randomInt.source(source)(WORDS.length);
  return { text: Array.from({ length: words }, () => WORDS[pick()]!).join(' '), words };
}

/** (seed, i) → a 32-bit seed: Knuth's multiplicative hash of each, so that neighbouring pairs differ widely. */
export function mix(seed: number, i: number): number {
  return (Math.imul(seed, 2_654_435_761) ^ Math.imul(i + 1, 40_503)) >>> 0;
}

async function readPromptFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--prompt-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/** One prompt per non-empty line; a line that starts with `{` is JSON with a string `prompt`. */
export function parsePromptFile(text: string, file: string): Prompt[] {
  const prompts: Prompt[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('{')) {
      prompts.push({ text: line });
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new UsageError(`--prompt-file ${file}:${index + 1}: not valid JSON`);
    }
    const prompt = (parsed as { prompt?: unknown }).prompt;
    if (typeof prompt !== 'string' || prompt === '') {
      throw new UsageError(`--prompt-file ${file}:${index + 1}: needs a non-empty string "prompt"`);
    }
    prompts.push({ text: prompt });
  }
  if (prompts.length === 0) throw new UsageError(`--prompt-file ${file} has no prompts`);
  return prompts;
}
