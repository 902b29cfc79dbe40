/**
 * The deployed program's imports are what it deploys (issue 9, item 12): from infra/index.ts, no mock harness or
 * test code, and none of the service's engine, tokenizer, HTTP server or config loader, which a preview would
 * otherwise load. Follows the relative imports of every file reached, as Node would.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { PROJECT_DIR } from './plan.js';

function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/^(import|export)\s([^;]*?)from\s+'(\.[^']+)'/gms)) {
      // `import type` is erased: nothing is loaded at run time.
      if (match[1] === 'import' && /^type\s/.test(match[2] ?? '')) continue;
      visit(resolve(dirname(file), (match[3] ?? '').replace(/\.js$/, '.ts')));
    }
  };
  visit(entry);
  return new Set([...seen].map((f) => relative(PROJECT_DIR, f)));
}

it('the program entry reaches only infra/ and three small leaf modules of the service', () => {
  const files = [...reachable(`${PROJECT_DIR}/infra/index.ts`)].sort();
  expect(files).toContain('infra/program.ts');
  expect(files.filter((f) => !f.startsWith('infra/'))).toEqual([
    'service/bench/metrics-names.ts',
    'service/config/describe.ts',
    'service/security/auth/keys.ts',
  ]);
});
