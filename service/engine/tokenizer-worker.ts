/**
 * A tokenizer thread: the chat template and the tokenizer for prompts, so templating and tokenizing a large
 * prompt (seconds for a megabyte of text) never hold the main thread's event loop, which serves HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ChatTemplate } from './chat-template.js';
import { EngineError } from './errors.js';
import { TextTokenizer } from './tokenizer.js';
import type { TokenizerJob, TokenizerReply, TokenizerWorkerInit } from './tokenizer-pool.js';

const port = parentPort!;
const init = workerData as TokenizerWorkerInit;
const tokenizer = new TextTokenizer(init.tokenizerJson, init.tokenizerConfig);
const template = new ChatTemplate(init.tokenizerConfig);

function run(job: TokenizerJob): number[] | string {
  if (job.op === 'chat') return tokenizer.encode(template.render(job.messages, true, job.tools), false);
  if (job.op === 'text') return tokenizer.encode(job.text, true);
  return tokenizer.decode(job.ids);
}

port.on('message', (job: TokenizerJob) => {
  let reply: TokenizerReply;
  try {
    const result = run(job);
    reply =
      typeof result === 'string'
        ? { id: job.id, ok: true, text: result }
        : { id: job.id, ok: true, ids: Int32Array.from(result) };
  } catch (err) {
    const code = err instanceof EngineError ? err.code : undefined;
    reply = { id: job.id, ok: false, message: (err as Error).message, ...(code ? { code } : {}) };
  }
  const transfer = reply.ok && 'ids' in reply ? [reply.ids.buffer as ArrayBuffer] : [];
  port.postMessage(reply, transfer);
});
port.postMessage({ id: 0, ok: true, text: 'ready' } satisfies TokenizerReply);
