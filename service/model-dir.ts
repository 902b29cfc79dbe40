/**
 * Said first, before any file in it is looked for: a model directory that is not there. The engine's own message
 * for that case is about the missing SHA256SUMS, which sends a user looking for a file instead of a path typo or
 * a model that was never built (issue 16).
 */
import { stat } from 'node:fs/promises';

/** Why `dir` cannot be a model directory at all ("… does not exist"), or undefined when it is a directory. */
export async function modelDirProblem(dir: string, setting = 'engine.modelDir'): Promise<string | undefined> {
  const info = await stat(dir).catch(() => undefined);
  if (info?.isDirectory()) return undefined;
  const hint = dir.includes('.cache/chatmirror/models')
    ? ' (build it first: bash test/fixtures/models/build.sh …)'
    : '';
  return `${setting} ${dir} ${info === undefined ? 'does not exist' : 'is not a directory'}${hint}`;
}
