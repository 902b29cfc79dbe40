/**
 * Loads xgrammar's WebAssembly build (@mlc-ai/web-xgrammar, pinned) into Node. The package is a UMD bundle that
 * declares `"type": "module"`, so Node's ESM loader refuses it (`require` / `__filename` are undefined there);
 * it is evaluated here as the CommonJS script it is, with two small hooks:
 *  - its Emscripten module is exposed (`binding`), so that masks and matching are synchronous calls: a decode
 *    step must not wait for a microtask per row, and the bundle's wrappers are async only to await init;
 *  - the module's stderr (`printErr`) comes here, because a refused grammar throws a bare "Aborted()" and the
 *    reason ("Regex parsing error at position 3: Lookbehind is not supported yet.") is only printed.
 * and its one dynamic `import('module')` is given node:module directly (code made by `new Function` has no
 * module context to import from under vitest's VM modules).
 * Each `loadXGrammar()` is a fresh WebAssembly instance: one that aborted is retired (see GrammarBackend).
 */
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);

/** The Emscripten/embind surface used here (xgrammar's C++ classes, by their binding names). */
export interface XGrammarBinding {
  TokenizerInfo: new (
    vocab: unknown,
    vocabType: string,
    vocabSize: number,
    stopTokenIds: unknown,
    prependSpace: boolean,
  ) => Handle;
  GrammarCompiler: new (info: Handle, maxThreads: number, cacheEnabled: boolean) => CompilerHandle;
  GrammarMatcher: new (
    compiled: Handle,
    stopTokens: unknown,
    terminateWithoutStop: boolean,
    maxRollback: number,
  ) => MatcherHandle;
  Grammar: { FromEBNF(ebnf: string, rootRule: string): Handle };
  vecStringFromJSArray(values: string[]): Handle;
  vecIntFromJSArray(values: number[]): Handle;
  vecIntToView(vec: Handle): Int32Array;
}

export interface Handle {
  delete(): void;
}

export interface CompilerHandle extends Handle {
  CompileJSONSchema(
    schema: string,
    anyWhitespace: boolean,
    indent: number | undefined,
    separators: { first: string; second: string } | undefined,
    strictMode: boolean,
    maxWhitespace: number | undefined,
  ): Handle;
  CompileStructuralTag(json: string): Handle;
  CompileGrammar(grammar: Handle): Handle;
}

export interface MatcherHandle extends Handle {
  GetNextTokenBitmask(vocabSize: number): Handle;
  AcceptToken(id: number, verbose: boolean): boolean;
  IsTerminated(): boolean;
}

/** The bundle's own helpers that are used as they are (JSON Schema → EBNF for grammars inside tags). */
export interface XGrammarLibrary {
  Testings: {
    _jsonSchemaToEBNF(
      schema: string,
      anyWhitespace?: boolean,
      indent?: number,
      separators?: [string, string],
      strictMode?: boolean,
    ): Promise<string>;
  };
}

export interface XGrammar {
  binding: XGrammarBinding;
  library: XGrammarLibrary;
  /** The module's last stderr lines (xgrammar prints why it refused a grammar before it aborts). */
  takeErrors(): string[];
}

const BUNDLE = require.resolve('@mlc-ai/web-xgrammar');
const BINDING_HOOK = 'let binding = null;';
const INIT_HOOK = 'binding = await Module();';
const IMPORT_HOOK = "await import('module')";

let source: string | undefined;

function bundleSource(): string {
  if (source !== undefined) return source;
  const text = readFileSync(BUNDLE, 'utf8');
  for (const hook of [BINDING_HOOK, INIT_HOOK, IMPORT_HOOK]) {
    // The version is pinned; a different bundle fails here, loudly, rather than half-working.
    if (text.split(hook).length !== 2) throw new Error(`web-xgrammar bundle changed: no single '${hook}'`);
  }
  source = text
    .replace(
      BINDING_HOOK,
      `${BINDING_HOOK} exports.__binding = async () => { await asyncInitBinding(); return binding; };`,
    )
    .replace(INIT_HOOK, 'binding = await Module(__moduleArg);')
    .replace(IMPORT_HOOK, '__nodeModule');
  return source;
}

export async function loadXGrammar(): Promise<XGrammar> {
  const errors: string[] = [];
  const record = (line: string) => {
    errors.push(line);
    if (errors.length > 20) errors.shift();
  };
  const exports: Record<string, unknown> = {};
  const module = { exports };
  // The pinned vendor bundle, evaluated as the CommonJS script it is (see above).
  const factory = new Function(
    'exports',
    'module',
    'require',
    '__filename',
    '__dirname',
    '__moduleArg',
    '__nodeModule',
    bundleSource(),
  );
  const moduleArg = { print: record, printErr: record };
  factory.call(exports, exports, module, require, BUNDLE, dirname(BUNDLE), moduleArg, nodeModule);
  const lib = module.exports as Record<string, unknown>;
  const binding = (await (lib.__binding as () => Promise<XGrammarBinding>)()) as XGrammarBinding;
  return {
    binding,
    library: lib as unknown as XGrammarLibrary,
    takeErrors: () => errors.splice(0),
  };
}
