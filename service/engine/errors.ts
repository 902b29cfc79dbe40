/**
 * Every failure the engine can report, each with a stable code so the API layer can map it to an HTTP status
 * without matching on message text.
 */
export type EngineErrorCode =
  | 'model_manifest_missing'
  | 'model_file_missing'
  | 'model_hash_mismatch'
  | 'model_file_unlisted'
  | 'model_format'
  | 'engine_overloaded'
  | 'engine_closed'
  | 'engine_worker_failed'
  | 'invalid_generation_params'
  /** The grammar compiler refused a constraint (a regex it cannot parse, a contradictory schema). */
  | 'grammar_refused';

export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

/** Thrown by `submit` when the batch and its waiting queue are both full: callers should shed load, not wait. */
export class EngineOverloadedError extends EngineError {
  constructor(
    readonly running: number,
    readonly waiting: number,
  ) {
    super('engine_overloaded', `the engine is at capacity (${running} running, ${waiting} waiting)`);
    this.name = 'EngineOverloadedError';
  }
}
