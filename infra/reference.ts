/**
 * The stack-config reference table for README.md, generated from the schema (`npx tsx infra/reference.ts`), so
 * the documentation lists exactly the keys, defaults and descriptions the program validates against.
 */
import { fileURLToPath } from 'node:url';
import { stackConfigReference } from './config.js';

export function stackConfigMarkdown(): string {
  const rows = stackConfigReference().map(({ key, defaultValue, description, secret }) => {
    const shown = defaultValue === undefined ? '—' : `\`${JSON.stringify(defaultValue)}\``;
    const text = `${secret ? '**secret** ' : ''}${description}`.replace(/\|/g, '\\|');
    return `| \`${key}\` | ${shown} | ${text} |`;
  });
  return ['| key | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${stackConfigMarkdown()}\n`);
