/**
 * Generated tables in docs/ live between a begin and an end marker; the generators (service/config/reference.ts,
 * service/error-reference.ts, infra/reference.ts) rewrite that section only, and test/unit/docs.test.ts checks
 * the file holds what they would write.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface DocSection {
  begin: string;
  end: string;
  /** What the section is, for the error when its markers are missing. */
  what: string;
  /** The section's whole text, markers included. */
  render: () => string;
}

/** Replaces the marked section of a Markdown file with the current text. */
export function withSection(markdown: string, section: DocSection): string {
  const begin = markdown.indexOf(section.begin);
  const end = markdown.indexOf(section.end);
  if (begin === -1 || end === -1) throw new Error(`the ${section.what} markers are missing`);
  return markdown.slice(0, begin) + section.render() + markdown.slice(end + section.end.length);
}

/** `tsx <generator> [--write FILE]`: rewrites FILE's section, or prints it; only when `moduleUrl` is the entry. */
export function runSectionCli(moduleUrl: string, section: DocSection): void {
  if (process.argv[1] !== fileURLToPath(moduleUrl)) return;
  const [flag, file] = process.argv.slice(2);
  if (flag === '--write' && file) writeFileSync(file, withSection(readFileSync(file, 'utf8'), section));
  else process.stdout.write(`${section.render()}\n`);
}
