import { Worker } from 'node:worker_threads';
import type { ChatMessage, TemplateTool } from './chat-template.js';
import { EngineError, type EngineErrorCode, EngineOverloadedError } from './errors.js';

export interface TokenizerWorkerInit {
  tokenizerJson: object;
  tokenizerConfig: Record<string, unknown>;
}

export type TokenizerJob =
  | { id: number; op: 'chat'; messages: ChatMessage[]; tools?: TemplateTool[] | undefined }
  | { id: number; op: 'text'; text: string }
  | { id: number; op: 'decode'; ids: number[] };

export type TokenizerReply =
  | { id: number; ok: true; ids: Int32Array }
  | { id: number; ok: true; text: string }
  | { id: number; ok: false; message: string; code?: EngineErrorCode };

type Job = TokenizerJob extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never;

interface Waiting {
  resolve: (value: number[] | string) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  jobs: Map<number, Waiting>;
}

/**
 * Templating and tokenizing off the main thread: `threads` worker threads, each with its own tokenizer and chat
 * template, given jobs least-busy first. At most `maxPending` jobs wait at once (then EngineOverloadedError,
 * a 429), so a flood of large prompts queues in bounded memory. A thread that dies fails its jobs and is
 * replaced.
 */
export class TokenizerPool {
  private readonly threads: Thread[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly init: TokenizerWorkerInit,
    private readonly maxPending: number,
  ) {}

  static async start(init: TokenizerWorkerInit, threads: number, maxPending: number): Promise<TokenizerPool> {
    const pool = new TokenizerPool(init, maxPending);
    await Promise.all(Array.from({ length: Math.max(1, threads) }, () => pool.spawn()));
    return pool;
  }

  /** Jobs given to the threads and not answered yet. */
  get pending(): number {
    return this.threads.reduce((sum, t) => sum + t.jobs.size, 0);
  }

  encodeChat(messages: ChatMessage[], tools?: TemplateTool[]): Promise<number[]> {
    return this.submit({ op: 'chat', messages, tools }) as Promise<number[]>;
  }

  encodeText(text: string): Promise<number[]> {
    return this.submit({ op: 'text', text }) as Promise<number[]>;
  }

  decode(ids: number[]): Promise<string> {
    return this.submit({ op: 'decode', ids }) as Promise<string>;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private submit(job: Job): Promise<number[] | string> {
    if (this.closed) return Promise.reject(new EngineError('engine_closed', 'the engine is shutting down'));
    if (this.pending >= this.maxPending) return Promise.reject(new EngineOverloadedError(0, this.pending));
    const thread = this.threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      thread.jobs.set(id, { resolve, reject });
      thread.worker.postMessage({ ...job, id } as TokenizerJob);
    });
  }

  private spawn(): Promise<void> {
    const worker = spawnTypeScriptWorker('./tokenizer-worker', this.init);
    const thread: Thread = { worker, jobs: new Map() };
    this.threads.push(thread);
    return new Promise<void>((ready, failed) => {
      let started = false;
      worker.on('message', (reply: TokenizerReply) => {
        if (reply.id === 0) {
          started = true;
          ready();
          return;
        }
        const waiting = thread.jobs.get(reply.id);
        if (!waiting) return;
        thread.jobs.delete(reply.id);
        // An error with no engine code (a template's own raise_exception) stays a plain Error, as on the main thread.
        if (!reply.ok)
          waiting.reject(reply.code ? new EngineError(reply.code, reply.message) : new Error(reply.message));
        else if ('ids' in reply) waiting.resolve(Array.from(reply.ids));
        else waiting.resolve(reply.text);
      });
      const lost = (why: string) => {
        const index = this.threads.indexOf(thread);
        if (index === -1) return;
        this.threads.splice(index, 1);
        for (const waiting of thread.jobs.values())
          waiting.reject(new EngineError('engine_worker_failed', `tokenizer thread ${why}`));
        thread.jobs.clear();
        if (!started) failed(new EngineError('model_format', `tokenizer thread ${why}`));
        else if (!this.closed) void this.spawn().catch(() => {});
      };
      worker.on('error', (err) => lost(`crashed: ${err.message}`));
      worker.on('exit', (code) => lost(`exited with code ${code}`));
    });
  }
}

/**
 * A worker thread running `<name>.js` next to this module, or `<name>.ts` under vitest/tsx: tsx's loader is
 * registered in the new thread first (loader hooks are per thread), then the module loads through it.
 */
export function spawnTypeScriptWorker(name: string, workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL(`${name}.js`, import.meta.url), { workerData });
  const url = new URL(`${name}.ts`, import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}
