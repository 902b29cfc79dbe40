import { createHash } from 'node:crypto';

/** One function a tool-calling constraint can call: its name and its parameters' JSON Schema (as JSON text). */
export interface ToolSpec {
  name: string;
  parameters: string;
}

/**
 * What a constrained row's output must be, as the API resolved it. Plain data (it crosses to the inference
 * worker); schemas travel as JSON text, so equal constraints hash equal.
 */
export type ConstraintSpec =
  /** Any JSON object (OpenAI's JSON mode). */
  | { kind: 'json_object' }
  /** A JSON value valid against the schema (checked for supported keywords first: see schema-keywords). */
  | { kind: 'json_schema'; schema: string }
  /** Text matching the regular expression as a whole. */
  | { kind: 'regex'; pattern: string }
  /** Exactly one of the strings. */
  | { kind: 'choice'; choices: string[] }
  /**
   * Tool calls in the tool-call syntax (TOOL_CALL_OPEN … TOOL_CALL_CLOSE, one JSON object {"name", "arguments"}
   * each): `required` allows only calls, `auto` allows text until a call opens and then constrains the call.
   * `parallel` false stops after the first call.
   */
  | { kind: 'tool_calls'; mode: 'auto' | 'required'; tools: ToolSpec[]; parallel: boolean };

/** The cache key of a constraint: equal specs (same schema text) compile once. */
export function constraintKey(spec: ConstraintSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

/** How a tool call is written in the output; the fallback prompt teaches the model the same syntax. */
export const TOOL_CALL_OPEN = '<tool_call>';
export const TOOL_CALL_CLOSE = '</tool_call>';

/** Text before a call's arguments; the arguments' JSON follows, then TOOL_CALL_END. */
export function toolCallBegin(name: string): string {
  return `${TOOL_CALL_OPEN}\n{"name": ${JSON.stringify(name)}, "arguments": `;
}

export const TOOL_CALL_END = `}\n${TOOL_CALL_CLOSE}`;
