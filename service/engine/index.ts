export type { ChatMessage } from './chat-template.js';
export { Engine, ENGINE_DEFAULTS, type EngineOptions } from './engine.js';
export { EngineError, EngineOverloadedError, type EngineErrorCode } from './errors.js';
export type * from './types.js';
