/**
 * Tool calls in and out of the model. The answer's syntax is Hermes' (`<tool_call>{"name", "arguments"}
 * </tool_call>`, the constraint enforces it); a template that reads `tools` renders the tools and the history
 * itself, and for one that does not (the bundled models') the tools and the history are written into the
 * prompt by the fallback below, documented in docs/structured-outputs.md.
 */
import { randomUUID } from 'node:crypto';
import {
  TOOL_CALL_CLOSE,
  TOOL_CALL_END,
  TOOL_CALL_OPEN,
  type ToolSpec,
  toolCallBegin,
} from '../../engine/grammar/constraint.js';
import type { ChatMessage, TemplateTool } from '../../engine/index.js';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** The tools as a chat template's `tools` variable. */
export function templateTools(tools: ToolSpec[], descriptions: (string | undefined)[]): TemplateTool[] {
  return tools.map((t, i) => ({
    type: 'function',
    function: { name: t.name, description: descriptions[i], parameters: JSON.parse(t.parameters) },
  }));
}

/** The fallback system prompt: the tools and the call syntax (Hermes' syntax, shortened for small contexts). */
export function toolSystemPrompt(tools: TemplateTool[]): string {
  const listed = tools.map((t) => JSON.stringify(t.function)).join('\n');
  return [
    `You can call these functions:\n<tools>\n${listed}\n</tools>`,
    'To call one, answer with:',
    `${TOOL_CALL_OPEN}\n{"name": <function-name>, "arguments": <args-json-object>}\n${TOOL_CALL_CLOSE}`,
  ].join('\n');
}

/** JSON as the constrained output writes it (Python's json.dumps: ", " and ": "), so replayed calls look alike. */
function dumps(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(dumps).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${dumps(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A replayed call, written exactly as the tool-call constraint makes the model write one. */
function callText(call: { function: { name: string; arguments: unknown } }): string {
  return `${toolCallBegin(call.function.name)}${dumps(call.function.arguments)}${TOOL_CALL_END}`;
}

/**
 * The fallback for a template without tool support: the tool prompt joins the system message (or becomes
 * one), an assistant's calls become its text in the call syntax, and a tool result becomes a user turn in
 * <tool_response> tags. Only system/user/assistant turns reach the template.
 */
export function fallbackToolMessages(messages: ChatMessage[], tools: TemplateTool[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  const prompt = tools.length > 0 ? toolSystemPrompt(tools) : undefined;
  const first = messages[0];
  if (prompt !== undefined) {
    if (first?.role === 'system') out.push({ role: 'system', content: `${first.content}\n\n${prompt}` });
    else out.push({ role: 'system', content: prompt });
  }
  for (const [i, m] of messages.entries()) {
    if (i === 0 && prompt !== undefined && m.role === 'system') continue;
    if (m.role === 'tool') {
      out.push({ role: 'user', content: `<tool_response>\n${m.content}\n</tool_response>` });
    } else if (m.role === 'assistant' && m.tool_calls?.length) {
      const calls = m.tool_calls.map(callText).join('\n');
      out.push({ role: 'assistant', content: m.content ? `${m.content}\n${calls}` : calls });
    } else {
      out.push({ role: m.role, content: m.content });
    }
  }
  return out;
}

/** A call's JSON text (name and arguments) as OpenAI returns it: `arguments` as JSON text. */
function parseCall(json: string): ToolCall | undefined {
  try {
    const value = JSON.parse(json) as { name?: unknown; arguments?: unknown };
    if (typeof value.name !== 'string') return undefined;
    return {
      id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`,
      type: 'function',
      function: { name: value.name, arguments: JSON.stringify(value.arguments ?? {}) },
    };
  } catch {
    return undefined;
  }
}

export type ToolStreamEvent = { type: 'text'; text: string } | { type: 'call'; call: ToolCall };

/**
 * Splits the answer's text, as it streams, into plain text and complete calls. Text that could be the start of
 * a call's opening tag is held until it is known not to be; a call is released whole when its closing tag
 * arrives. A call cut short (length) is released as text at the end.
 */
export class ToolCallSplitter {
  private buffer = '';
  private inCall = false;
  readonly calls: ToolCall[] = [];

  push(text: string): ToolStreamEvent[] {
    this.buffer += text;
    const events: ToolStreamEvent[] = [];
    for (;;) {
      if (!this.inCall) {
        const open = this.buffer.indexOf(TOOL_CALL_OPEN);
        if (open === -1) {
          const hold = heldPrefix(this.buffer, TOOL_CALL_OPEN);
          const out = this.buffer.slice(0, this.buffer.length - hold);
          if (out) events.push({ type: 'text', text: out });
          this.buffer = this.buffer.slice(this.buffer.length - hold);
          return events;
        }
        if (open > 0) events.push({ type: 'text', text: this.buffer.slice(0, open) });
        this.buffer = this.buffer.slice(open);
        this.inCall = true;
      }
      const close = this.buffer.indexOf(TOOL_CALL_CLOSE);
      if (close === -1) return events;
      const whole = this.buffer.slice(0, close + TOOL_CALL_CLOSE.length);
      const call = parseCall(this.buffer.slice(TOOL_CALL_OPEN.length, close));
      if (call) {
        this.calls.push(call);
        events.push({ type: 'call', call });
      } else {
        events.push({ type: 'text', text: whole });
      }
      this.buffer = this.buffer.slice(whole.length);
      this.inCall = false;
    }
  }

  /** The rest at the end: held text, or a call that never closed, as text. */
  end(): ToolStreamEvent[] {
    const rest = this.buffer;
    this.buffer = '';
    this.inCall = false;
    return rest ? [{ type: 'text', text: rest }] : [];
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`. */
function heldPrefix(text: string, tag: string): number {
  for (let len = Math.min(tag.length - 1, text.length); len > 0; len--) {
    if (tag.startsWith(text.slice(text.length - len))) return len;
  }
  return 0;
}
