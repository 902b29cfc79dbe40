import {
  type ConstraintSpec,
  constraintKey,
  TOOL_CALL_END,
  TOOL_CALL_OPEN,
  toolCallBegin,
} from './constraint.js';
import { closeIntegerBounds, repairSchemaGrammar } from './grammar-repairs.js';
import { RowConstraint } from './row-constraint.js';
import type { GrammarVocabulary } from './vocabulary.js';
import { type CompilerHandle, type Handle, loadXGrammar, type XGrammar } from './xgrammar.js';

/** JSON as json.dumps writes it by default: no newlines, ", " and ": ". Free whitespace would let a weak model
 * pad forever; fixed separators keep the output short and the tokens familiar. */
const SEPARATORS = { first: ', ', second: ': ' };

/** A refused grammar (bad regex, contradictory schema); the message is xgrammar's own reason. */
export class GrammarCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarCompileError';
  }
}

interface Instance {
  xg: XGrammar;
  compiler: CompilerHandle;
  info: Handle;
}

interface Cached {
  instance: Instance;
  compiled: Handle;
}

/** Compiled grammars kept (least recently used dropped first); a schema compiles once, then costs a lookup. */
export const GRAMMAR_CACHE_ENTRIES = 64;

/**
 * xgrammar over one model's vocabulary, in the inference worker: compiles constraints (cached by the hash of
 * their spec) and hands each constrained sequence its own matcher.
 *
 * A grammar xgrammar refuses aborts its WebAssembly instance mid-call (no unwinding, so its stack is not given
 * back). That instance then compiles nothing more: the next compile loads a fresh one. Grammars already
 * compiled in the old one, and their matchers, keep working there.
 */
export class GrammarBackend {
  private current: Instance | undefined;
  private readonly cache = new Map<string, Cached>();
  /** Compiles in flight, so concurrent requests with one new schema compile it once. */
  private readonly compiling = new Map<string, Promise<Cached>>();

  constructor(
    private readonly vocabulary: GrammarVocabulary,
    private readonly stopTokenIds: number[],
  ) {}

  /** Compiles (or finds) the grammar of a spec; throws GrammarCompileError with xgrammar's reason. */
  async prepare(spec: ConstraintSpec): Promise<string> {
    const key = constraintKey(spec);
    await this.compiled(key, spec);
    return key;
  }

  /** A fresh matcher for one sequence, at the start of the grammar. */
  async row(spec: ConstraintSpec): Promise<RowConstraint> {
    const { instance, compiled } = await this.compiled(constraintKey(spec), spec);
    const { binding } = instance.xg;
    const stops = binding.vecIntFromJSArray(this.stopTokenIds);
    try {
      const matcher = new binding.GrammarMatcher(compiled, stops, false, -1);
      return new RowConstraint(binding, matcher, this.vocabulary.vocabSize);
    } finally {
      stops.delete();
    }
  }

  private async compiled(key: string, spec: ConstraintSpec): Promise<Cached> {
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    let job = this.compiling.get(key);
    if (!job) {
      job = this.compile(spec).finally(() => this.compiling.delete(key));
      this.compiling.set(key, job);
    }
    const done = await job;
    this.cache.set(key, done);
    while (this.cache.size > GRAMMAR_CACHE_ENTRIES) {
      const [oldest, entry] = this.cache.entries().next().value as [string, Cached];
      this.cache.delete(oldest);
      entry.compiled.delete();
    }
    return done;
  }

  private async compile(spec: ConstraintSpec): Promise<Cached> {
    const instance = await this.instance();
    instance.xg.takeErrors();
    try {
      return { instance, compiled: await compileSpec(instance, spec) };
    } catch (err) {
      const reason = instance.xg
        .takeErrors()
        .map((line) => /\[FATAL\][^:]*:\d+: (.*)/.exec(line)?.[1])
        .filter((line) => line !== undefined)
        .pop();
      if (err instanceof GrammarCompileError) throw err;
      // Retired: see the class comment. Its cached grammars go too, so that the instance (its whole heap) is
      // freed once its last matcher ends, however many refusals come.
      if (this.current === instance) this.current = undefined;
      for (const [key, entry] of this.cache) {
        if (entry.instance !== instance) continue;
        this.cache.delete(key);
        entry.compiled.delete();
      }
      throw new GrammarCompileError(reason ?? `the grammar was refused (${(err as Error).message})`);
    }
  }

  private async instance(): Promise<Instance> {
    if (this.current) return this.current;
    const xg = await loadXGrammar();
    const { binding } = xg;
    const pieces = binding.vecStringFromJSArray(this.vocabulary.pieces);
    const stops = binding.vecIntFromJSArray(this.stopTokenIds);
    try {
      const info = new binding.TokenizerInfo(
        pieces,
        this.vocabulary.vocabType.toUpperCase(),
        this.vocabulary.vocabSize,
        stops,
        false,
      );
      const compiler = new binding.GrammarCompiler(info, 1, true);
      this.current = { xg, compiler, info };
      return this.current;
    } finally {
      pieces.delete();
      stops.delete();
    }
  }
}

/** A JSON Schema as compact-JSON EBNF (strict: no members the schema does not name), kept inside JSON. */
async function schemaEbnf(xg: XGrammar, schema: string): Promise<string> {
  const ebnf = await xg.library.Testings._jsonSchemaToEBNF(
    JSON.stringify(closeIntegerBounds(JSON.parse(schema))),
    false,
    -1,
    [SEPARATORS.first, SEPARATORS.second],
    true,
  );
  return repairSchemaGrammar(ebnf);
}

async function compileSpec(instance: Instance, spec: ConstraintSpec): Promise<Handle> {
  const { compiler, xg } = instance;
  const structural = (format: object) =>
    compiler.CompileStructuralTag(JSON.stringify({ type: 'structural_tag', format }));
  switch (spec.kind) {
    case 'json_object':
      // Non-strict: an object with any members (strict would mean "no properties" for a bare object schema).
      return compiler.CompileJSONSchema('{"type": "object"}', false, undefined, SEPARATORS, false, undefined);
    case 'json_schema': {
      const grammar = xg.binding.Grammar.FromEBNF(await schemaEbnf(xg, spec.schema), 'root');
      try {
        return compiler.CompileGrammar(grammar);
      } finally {
        grammar.delete();
      }
    }
    case 'regex':
      return structural({ type: 'regex', pattern: spec.pattern });
    case 'choice':
      return structural({
        type: 'or',
        elements: spec.choices.map((value) => ({ type: 'const_string', value })),
      });
    case 'tool_calls': {
      const tags = await Promise.all(
        spec.tools.map(async (tool) => ({
          type: 'tag',
          begin: toolCallBegin(tool.name),
          // The arguments as EBNF, so they get the same compact JSON as json_schema (a json_schema format
          // inside a structural tag allows free whitespace).
          content: {
            type: 'grammar',
            grammar: await schemaEbnf(xg, tool.parameters),
          },
          end: TOOL_CALL_END,
        })),
      );
      if (spec.mode === 'required') {
        return structural({
          type: 'tags_with_separator',
          tags,
          separator: '\n',
          at_least_one: true,
          stop_after_first: !spec.parallel,
        });
      }
      return structural({
        type: 'triggered_tags',
        triggers: [TOOL_CALL_OPEN],
        tags,
        at_least_one: false,
        stop_after_first: !spec.parallel,
      });
    }
  }
}
