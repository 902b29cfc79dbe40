import { Template } from '@huggingface/jinja';
import { EngineError } from './errors.js';

/** A call as Transformers' chat templates read it: `arguments` is the parsed object, not JSON text. */
export interface TemplateToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: unknown };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** An assistant turn that called tools (templates that support tools render them). */
  tool_calls?: TemplateToolCall[] | undefined;
  /** A tool turn: which call it answers. */
  tool_call_id?: string | undefined;
}

/** A tool as Transformers passes `tools` to a chat template (OpenAI's own shape). */
export interface TemplateTool {
  type: 'function';
  function: { name: string; description?: string | undefined; parameters: unknown };
}

type TemplateSource = string | { name: string; template: string }[] | undefined;

function pickTemplate(source: TemplateSource): string | undefined {
  if (typeof source === 'string' || source === undefined) return source;
  // Transformers stores several named templates as a list; "default" is the one chat uses.
  return source.find((t) => t.name === 'default')?.template;
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'content' in value) return String(value.content);
  return undefined;
}

/** Renders the model's own `chat_template` from tokenizer_config.json, as `apply_chat_template` does. */
export class ChatTemplate {
  private readonly template: Template | undefined;
  /** The template reads `tools` (Hermes, Qwen, Llama 3.1 templates do); else the API writes its own prompt. */
  readonly supportsTools: boolean;
  private readonly specialTokens: Record<string, string | undefined>;

  constructor(tokenizerConfig: Record<string, unknown>) {
    const source = pickTemplate(tokenizerConfig.chat_template as TemplateSource);
    this.template = source === undefined ? undefined : new Template(source);
    this.supportsTools = source !== undefined && /\btools\b/.test(source);
    this.specialTokens = {
      bos_token: tokenContent(tokenizerConfig.bos_token),
      eos_token: tokenContent(tokenizerConfig.eos_token),
      pad_token: tokenContent(tokenizerConfig.pad_token),
      unk_token: tokenContent(tokenizerConfig.unk_token),
    };
  }

  get available(): boolean {
    return this.template !== undefined;
  }

  render(messages: ChatMessage[], addGenerationPrompt = true, tools?: TemplateTool[]): string {
    if (!this.template) {
      throw new EngineError('model_format', 'this model has no chat_template in tokenizer_config.json');
    }
    return this.template.render({
      ...this.specialTokens,
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...(tools ? { tools } : {}),
    });
  }
}
