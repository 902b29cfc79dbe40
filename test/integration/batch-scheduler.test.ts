/**
 * The scheduler in-process (no worker), so a test can act between two decode steps and see exactly what the
 * next step does: a cancelled row is gone from the very next batched step.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchScheduler } from '../../service/engine/batch.js';
import { readVerified } from '../../service/engine/manifest.js';
import { loadModelFiles } from '../../service/engine/model-files.js';
import { type DecoderModel, loadDecoderModel } from '../../service/engine/onnx.js';
import { Sequence } from '../../service/engine/sequence.js';
import { TextTokenizer } from '../../service/engine/tokenizer.js';
import type { GenerationEvent } from '../../service/engine/types.js';
import { params, TINY_MODEL_DIR } from '../helpers/model.js';

let model: DecoderModel;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  const files = await loadModelFiles(TINY_MODEL_DIR);
  const graph = await readVerified(files.dir, files.manifest, files.graphFile);
  model = await loadDecoderModel(graph, [], files.graphFile, { intraOpThreads: 1 });
  tokenizer = new TextTokenizer(files.tokenizerJson, files.tokenizerConfig);
});

describe('BatchScheduler', () => {
  it('a cancelled row leaves before the next decode step; the others keep decoding', async () => {
    const log: { step: number; decodeRows: number; id: number; event: GenerationEvent }[] = [];
    let step = 0;
    let scheduler: BatchScheduler | undefined;
    let cancelledAtStep = -1;
    let finished = 0;
    scheduler = new BatchScheduler(model, 4, (batch, decodeRows) => {
      if (decodeRows > 0) step++;
      for (const [id, events] of batch) {
        for (const event of events) {
          log.push({ step, decodeRows, id, event });
          if (event.type === 'finish' && ++finished === 2) scheduler?.close();
        }
      }
      const tokensOfA = log.filter((l) => l.id === 1 && l.event.type === 'token').length;
      if (tokensOfA === 5 && cancelledAtStep === -1) {
        cancelledAtStep = step;
        scheduler?.cancel(1);
      }
    });
    const limits = { contextLength: 512, eosTokenIds: new Set<number>() };
    const long = params({ maxTokens: 30, ignoreEos: true });
    scheduler.submit(
      new Sequence(
        1,
        { promptIds: tokenizer.encode('In the beginning', false), params: long },
        tokenizer,
        limits,
      ),
    );
    scheduler.submit(
      new Sequence(
        2,
        { promptIds: tokenizer.encode('And God said', false), params: long },
        tokenizer,
        limits,
      ),
    );
    await scheduler.run();

    const ofA = log.filter((l) => l.id === 1);
    expect(ofA.filter((l) => l.event.type === 'token')).toHaveLength(5);
    const abort = ofA.find((l) => l.event.type === 'finish')!;
    expect(abort.event).toMatchObject({ finishReason: 'abort', completionTokens: 5 });
    // The abort is reported before any further decode step ran…
    expect(abort.step).toBe(cancelledAtStep);
    // …and every later step decoded only the remaining row.
    const later = log.filter((l) => l.step > cancelledAtStep && l.decodeRows > 0);
    expect(later.length).toBeGreaterThan(0);
    for (const l of later) expect(l.decodeRows).toBe(1);
    expect(log.filter((l) => l.id === 2 && l.event.type === 'token')).toHaveLength(30);
  });
});
