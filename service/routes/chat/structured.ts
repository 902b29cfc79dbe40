/**
 * response_format and tools → the constraint the engine enforces. Every schema is checked for keywords the
 * grammar would not enforce first (400 unsupported_schema naming the keyword), so a request never runs with
 * part of its schema silently dropped.
 */

import type { ConstraintSpec, ToolSpec } from '../../engine/grammar/constraint.js';
import {
  checkPatternCost,
  checkSchemaKeywords,
  UnsupportedSchemaError,
} from '../../engine/grammar/schema-keywords.js';
import type { Engine } from '../../engine/index.js';
import { EngineError } from '../../engine/index.js';
import { ApiError, echo } from '../../errors.js';
import type { ChatCompletionRequest } from './schema.js';

export type ToolMode = 'none' | 'auto' | 'required';

/** What the request asks of the output, resolved: the constraint and, for tools, how to read the answer. */
export interface OutputPlan {
  constraint: ConstraintSpec | undefined;
  /** Where the constraint came from (the param a compiler refusal names). */
  param: string;
  /** Tools offered to the model (rendered into the prompt) and whether the answer may be calls. */
  tools: ToolSpec[];
  toolMode: ToolMode;
}

/** Schemas above this size (as JSON text) are refused: compile time grows with the grammar. */
export const MAX_SCHEMA_CHARS = 64 * 1024;

function schemaText(schema: unknown, param: string): string {
  try {
    checkSchemaKeywords(schema);
  } catch (err) {
    if (!(err instanceof UnsupportedSchemaError)) throw err;
    const where = err.path === '' ? '' : ` at ${echo(err.path)}`;
    throw new ApiError(
      'unsupported_schema',
      `${echo(err.message)}${where}; constrained decoding cannot enforce it.`,
      err.keyword === '' ? param : `${param}${err.path.replaceAll('/', '.')}.${err.keyword}`,
    );
  }
  const text = JSON.stringify(schema);
  if (text.length > MAX_SCHEMA_CHARS) {
    throw new ApiError('invalid_request', `The schema is over ${MAX_SCHEMA_CHARS} characters.`, param);
  }
  return text;
}

function fromResponseFormat(body: ChatCompletionRequest): OutputPlan['constraint'] {
  const format = body.response_format;
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { kind: 'json_object' };
  if (format.type === 'json_schema') {
    // OpenAI's own default for a json_schema without one: any JSON object.
    const schema = format.json_schema.schema ?? { type: 'object' };
    return { kind: 'json_schema', schema: schemaText(schema, 'response_format.json_schema.schema') };
  }
  if (format.type === 'regex') {
    try {
      checkPatternCost(format.regex, 'regex');
    } catch (err) {
      if (err instanceof UnsupportedSchemaError) {
        throw new ApiError('unsupported_schema', echo(err.message), 'response_format.regex');
      }
      throw err;
    }
    return { kind: 'regex', pattern: format.regex };
  }
  return { kind: 'choice', choices: format.choice };
}

function toolMode(body: ChatCompletionRequest): { mode: ToolMode; named?: string } {
  const choice = body.tool_choice ?? (body.tools?.length ? 'auto' : 'none');
  if (typeof choice === 'string') return { mode: choice };
  return { mode: 'required', named: choice.function.name };
}

export function resolveOutput(body: ChatCompletionRequest): OutputPlan {
  const fromFormat = fromResponseFormat(body);
  const tools: ToolSpec[] = (body.tools ?? []).map((t, i) => ({
    name: t.function.name,
    parameters: schemaText(t.function.parameters ?? { type: 'object' }, `tools[${i}].function.parameters`),
  }));
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    if (names.has(t.name)) {
      throw new ApiError('invalid_request', `Two tools are named '${t.name}'.`, `tools[${i}].function.name`);
    }
    names.add(t.name);
  }
  const { mode, named } = toolMode(body);
  if (mode !== 'none' && tools.length === 0) {
    throw new ApiError('invalid_request', `tool_choice '${mode}' needs at least one tool.`, 'tool_choice');
  }
  if (mode === 'none') {
    const param = body.response_format?.type === 'regex' ? 'response_format.regex' : 'response_format';
    return { constraint: fromFormat, param, tools, toolMode: mode };
  }
  if (fromFormat) {
    throw new ApiError(
      'unsupported_parameter',
      "response_format other than 'text' together with tools is not supported; send tool_choice 'none' or no response_format.",
      'response_format',
    );
  }
  const offered = named === undefined ? tools : tools.filter((t) => t.name === named);
  if (offered.length === 0) {
    throw new ApiError(
      'invalid_request',
      `tool_choice names '${echo(named)}', which is not among tools.`,
      'tool_choice',
    );
  }
  return {
    constraint: {
      kind: 'tool_calls',
      mode: mode === 'auto' ? 'auto' : 'required',
      tools: offered,
      // A named function is one call, as OpenAI makes it.
      parallel: named === undefined && body.parallel_tool_calls !== false,
    },
    param: 'tools',
    tools,
    toolMode: mode,
  };
}

/** Compiles the plan's grammar in the inference worker; a refusal is the client's 400, with the reason. */
export async function prepareOutput(engine: Engine, plan: OutputPlan): Promise<void> {
  if (!plan.constraint) return;
  try {
    await engine.prepareConstraint(plan.constraint);
  } catch (err) {
    if (err instanceof EngineError && err.code === 'grammar_refused') {
      throw new ApiError('invalid_grammar', `The grammar compiler refused it: ${err.message}`, plan.param);
    }
    throw err;
  }
}
