import { Template } from '@huggingface/jinja';
import { EngineError } from './errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
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
  private readonly specialTokens: Record<string, string | undefined>;

  constructor(tokenizerConfig: Record<string, unknown>) {
    const source = pickTemplate(tokenizerConfig.chat_template as TemplateSource);
    this.template = source === undefined ? undefined : new Template(source);
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

  render(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (!this.template) {
      throw new EngineError('model_format', 'this model has no chat_template in tokenizer_config.json');
    }
    return this.template.render({
      ...this.specialTokens,
      messages,
      add_generation_prompt: addGenerationPrompt,
    });
  }
}
