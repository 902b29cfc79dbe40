import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, normalize, sep } from 'node:path';
import { EngineError } from './errors.js';

/** `sha256sum` output: relative path → lowercase hex digest. */
export type Manifest = ReadonlyMap<string, string>;

export const MANIFEST_FILE = 'SHA256SUMS';

const LINE = /^([0-9a-f]{64}) [ *](.+)$/;

export function parseManifest(text: string, source: string): Manifest {
  const entries = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line === '') return;
    const match = LINE.exec(line);
    if (!match) {
      throw new EngineError(
        'model_format',
        `${source}:${i + 1}: not a sha256sum line: ${JSON.stringify(line)}`,
      );
    }
    const path = normalize(match[2]!);
    // A manifest that points outside the model directory would let a tampered manifest vouch for any file.
    if (path.startsWith('..') || path.startsWith(sep)) {
      throw new EngineError('model_format', `${source}:${i + 1}: path escapes the model directory: ${path}`);
    }
    entries.set(path, match[1]!);
  });
  return entries;
}

export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new EngineError(
      'model_manifest_missing',
      `model directory ${dir} has no ${MANIFEST_FILE}; refusing to load unverified files ` +
        `(create it with: cd ${dir} && find . -type f ! -name ${MANIFEST_FILE} -printf '%P\\n' | sort | xargs sha256sum > ${MANIFEST_FILE})`,
    );
  }
  return parseManifest(text, path);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Reads a file and checks it against the manifest in one pass, so the bytes that were verified are the bytes
 * that get used (no window between a check and a second read).
 */
export async function readVerified(dir: string, manifest: Manifest, relPath: string): Promise<Buffer> {
  const expected = manifest.get(normalize(relPath));
  if (expected === undefined) {
    throw new EngineError(
      'model_file_unlisted',
      `${relPath} is not listed in ${join(dir, MANIFEST_FILE)}; every file the engine loads must be`,
    );
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, relPath));
  } catch {
    throw new EngineError(
      'model_file_missing',
      `${join(dir, relPath)} is listed in ${MANIFEST_FILE} but missing`,
    );
  }
  const actual = sha256(bytes);
  if (actual !== expected) {
    throw new EngineError(
      'model_hash_mismatch',
      `${join(dir, relPath)} failed verification: expected sha256 ${expected}, actual ${actual}`,
    );
  }
  return bytes;
}
