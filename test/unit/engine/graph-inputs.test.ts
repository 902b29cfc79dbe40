/**
 * graphInputTypes reads the element types of an ONNX graph's inputs from the protobuf without loading it: on the
 * bundled model's real graph, and on hand-encoded models (a float16 KV cache, fields in unusual places, garbage).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphFormatError, graphInputTypes } from '../../../service/engine/graph-inputs.js';
import { TINY_MODEL_DIR } from '../../helpers/model.js';

const root = mkdtempSync(join(tmpdir(), 'chatmirror-graph-inputs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Protobuf encoding, as onnx.proto3 lays the messages out.
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}
const field = (number: number, bytes: number[]) => [
  ...varint(number * 8 + 2),
  ...varint(bytes.length),
  ...bytes,
];
const int = (number: number, value: number) => [...varint(number * 8), ...varint(value)];
const text = (s: string) => [...Buffer.from(s)];
/** ValueInfoProto { name, type { tensor_type { elem_type } } } */
const input = (name: string, elemType: number) =>
  field(11, [...field(1, text(name)), ...field(2, field(1, int(1, elemType)))]);

function model(graph: number[], before: number[] = []): string {
  const file = join(root, `m${Math.random().toString(36).slice(2)}.onnx`);
  // ir_version = 1 (varint), producer_name = 2, then the graph (7).
  writeFileSync(file, Buffer.from([...int(1, 8), ...field(2, text('test')), ...before, ...field(7, graph)]));
  return file;
}

describe('graphInputTypes', () => {
  it("reads the bundled model's inputs", async () => {
    const types = await graphInputTypes(join(TINY_MODEL_DIR, 'onnx/model.onnx'));
    expect(types.get('input_ids')).toBe('int64');
    expect(types.get('past_key_values.0.key')).toBe('float32');
    expect(types.get('past_key_values.0.value')).toBe('float32');
  });

  it('finds the inputs after nodes and a large initializer, which it skips', async () => {
    const initializer = field(5, [...field(8, text('w')), ...field(9, new Array(300_000).fill(7))]);
    const file = model([
      ...field(1, field(4, text('MatMul'))),
      ...initializer,
      ...input('input_ids', 7),
      ...input('past_key_values.0.key', 10),
      ...input('past_key_values.0.value', 10),
    ]);
    expect([...(await graphInputTypes(file))]).toEqual([
      ['input_ids', 'int64'],
      ['past_key_values.0.key', 'float16'],
      ['past_key_values.0.value', 'float16'],
    ]);
  });

  it('names unknown element types by number, and refuses a file that is not a model', async () => {
    expect((await graphInputTypes(model(input('x', 3)))).get('x')).toBe('type 3');
    const noGraph = join(root, 'no-graph.onnx');
    writeFileSync(noGraph, Buffer.from(int(1, 8)));
    await expect(graphInputTypes(noGraph)).rejects.toThrow(GraphFormatError);
    const garbage = join(root, 'garbage.onnx');
    writeFileSync(garbage, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await expect(graphInputTypes(garbage)).rejects.toThrow(/is not a readable ONNX model/);
  });
});
