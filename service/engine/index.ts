export type { ChatMessage, TemplateTool, TemplateToolCall } from './chat-template.js';
export { ENGINE_DEFAULTS, Engine, type EngineOptions, type SubmitHooks } from './engine.js';
export { EngineError, type EngineErrorCode, EngineOverloadedError } from './errors.js';
export { FlowValve } from './flow.js';
export type * from './types.js';
