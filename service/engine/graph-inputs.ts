/**
 * The element types of an ONNX graph's inputs, read from the file's protobuf without loading it: `chatmirror
 * check` needs the KV cache's dtype (float32 or float16) to size it, and loading the graph into onnxruntime to
 * ask would take the memory the check is there to predict. Only the graph's `input` entries are parsed; the
 * nodes and initializers (the weights, hundreds of MB) are skipped by their length prefixes, so a few thousand
 * small positional reads replace reading the file.
 *
 * Field numbers are onnx.proto3's: ModelProto.graph = 7; GraphProto.input = 11; ValueInfoProto.name = 1,
 * .type = 2; TypeProto.tensor_type = 1; TypeProto.Tensor.elem_type = 1.
 */
import { open } from 'node:fs/promises';

/** TensorProto.DataType values → the names onnxruntime uses, for the types a KV cache can have. */
const ELEMENT_TYPES: Record<number, string> = {
  1: 'float32',
  7: 'int64',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};
/** Bytes per element of each type above. */
export const ELEMENT_BYTES: Record<string, number> = { float32: 4, float16: 2, float64: 8, bfloat16: 2 };

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;
const MODEL_GRAPH = 7;
const GRAPH_INPUT = 11;
/** A ValueInfoProto is a name and a shape; anything larger than this is not one. */
const MAX_VALUE_INFO_BYTES = 1 << 20; // 1 MiB

/** Thrown for a file that is not a well-formed ONNX model. */
export class GraphFormatError extends Error {
  constructor(file: string, why: string) {
    super(`${file} is not a readable ONNX model: ${why}`);
    this.name = 'GraphFormatError';
  }
}

interface Varint {
  value: number;
  next: number;
}

function varintAt(bytes: Uint8Array, offset: number): Varint | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.length && i < offset + 10; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale; // arithmetic, not shifts: lengths may exceed 2^31
    scale *= 128;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/** Calls `field` for each top-level field of the message in bytes; length-delimited ones get their bytes. */
function eachField(
  bytes: Uint8Array,
  field: (number: number, wire: number, value: Uint8Array | number) => void,
) {
  let at = 0;
  while (at < bytes.length) {
    const tag = varintAt(bytes, at);
    if (tag === undefined) return;
    const number = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    at = tag.next;
    if (wire === WIRE_VARINT) {
      const v = varintAt(bytes, at);
      if (v === undefined) return;
      field(number, wire, v.value);
      at = v.next;
    } else if (wire === WIRE_LENGTH) {
      const length = varintAt(bytes, at);
      if (length === undefined) return;
      field(number, wire, bytes.subarray(length.next, length.next + length.value));
      at = length.next + length.value;
    } else if (wire === WIRE_FIXED64) at += 8;
    else if (wire === WIRE_FIXED32) at += 4;
    else return;
  }
}

/** name → element type ('float32', 'float16', …, or 'type N' for others) of one ValueInfoProto. */
function valueInfo(bytes: Uint8Array): { name: string; type: string } | undefined {
  let name: string | undefined;
  let type: string | undefined;
  eachField(bytes, (number, _wire, value) => {
    if (number === 1 && value instanceof Uint8Array) name = new TextDecoder().decode(value);
    if (number !== 2 || !(value instanceof Uint8Array)) return;
    eachField(value, (typeField, _w, tensor) => {
      if (typeField !== 1 || !(tensor instanceof Uint8Array)) return;
      eachField(tensor, (tensorField, _x, elem) => {
        if (tensorField === 1 && typeof elem === 'number') type = ELEMENT_TYPES[elem] ?? `type ${elem}`;
      });
    });
  });
  return name === undefined || type === undefined ? undefined : { name, type };
}

/** Every graph input's element type, by name, read from `file` (an .onnx model). */
export async function graphInputTypes(file: string): Promise<Map<string, string>> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const head = new Uint8Array(20);
    const readAt = async (position: number, length: number) => {
      const buffer = new Uint8Array(Math.min(length, Math.max(0, size - position)));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      return buffer.subarray(0, bytesRead);
    };
    /** The tag and length prefix of the field at `position`, and where its value starts. */
    const fieldAt = async (position: number) => {
      const bytes = await readAt(position, head.length);
      const tag = varintAt(bytes, 0);
      if (tag === undefined) throw new GraphFormatError(file, `bad field tag at byte ${position}`);
      const wire = tag.value % 8;
      const number = Math.floor(tag.value / 8);
      if (wire === WIRE_VARINT) {
        const v = varintAt(bytes, tag.next);
        if (v === undefined) throw new GraphFormatError(file, `bad varint at byte ${position}`);
        return { number, start: position + v.next, length: 0 };
      }
      if (wire === WIRE_FIXED64) return { number, start: position + tag.next, length: 8 };
      if (wire === WIRE_FIXED32) return { number, start: position + tag.next, length: 4 };
      if (wire !== WIRE_LENGTH) throw new GraphFormatError(file, `wire type ${wire} at byte ${position}`);
      const length = varintAt(bytes, tag.next);
      if (length === undefined) throw new GraphFormatError(file, `bad length at byte ${position}`);
      return { number, start: position + length.next, length: length.value, delimited: true };
    };

    let graph: { start: number; end: number } | undefined;
    for (let at = 0; at < size; ) {
      const field = await fieldAt(at);
      if (field.number === MODEL_GRAPH && field.delimited)
        graph = { start: field.start, end: field.start + field.length };
      at = field.start + field.length;
    }
    if (graph === undefined) throw new GraphFormatError(file, 'no graph');

    const inputs = new Map<string, string>();
    for (let at = graph.start; at < graph.end; ) {
      const field = await fieldAt(at);
      if (field.number === GRAPH_INPUT && field.delimited) {
        if (field.length > MAX_VALUE_INFO_BYTES)
          throw new GraphFormatError(file, `a graph input of ${field.length} bytes`);
        const info = valueInfo(await readAt(field.start, field.length));
        if (info !== undefined) inputs.set(info.name, info.type);
      }
      at = field.start + field.length;
    }
    return inputs;
  } finally {
    await handle.close();
  }
}
