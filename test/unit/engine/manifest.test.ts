import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../../service/engine/errors.js';
import { parseManifest, readManifest, readVerified, sha256 } from '../../../service/engine/manifest.js';

async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'manifest-'));
  for (const [name, body] of Object.entries(files)) await writeFile(join(dir, name), body);
  return dir;
}

describe('model manifest', () => {
  it('reads a file whose hash matches', async () => {
    const dir = await dirWith({ 'a.txt': 'hello', SHA256SUMS: `${sha256(Buffer.from('hello'))}  a.txt\n` });
    const bytes = await readVerified(dir, await readManifest(dir), 'a.txt');
    expect(bytes.toString()).toBe('hello');
  });

  it('names the file, the expected and the actual hash on a mismatch', async () => {
    const expected = sha256(Buffer.from('hello'));
    const dir = await dirWith({ 'a.txt': 'hellO', SHA256SUMS: `${expected}  a.txt\n` });
    const err = await readVerified(dir, await readManifest(dir), 'a.txt').catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.code).toBe('model_hash_mismatch');
    expect(err.message).toContain('a.txt');
    expect(err.message).toContain(expected);
    expect(err.message).toContain(sha256(Buffer.from('hellO')));
  });

  it('refuses a directory without a manifest', async () => {
    const dir = await dirWith({ 'a.txt': 'x' });
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'model_manifest_missing' });
  });

  it('refuses a listed file that is missing and an unlisted file', async () => {
    const dir = await dirWith({ SHA256SUMS: `${'0'.repeat(64)}  gone.bin\n`, 'extra.bin': 'x' });
    const manifest = await readManifest(dir);
    await expect(readVerified(dir, manifest, 'gone.bin')).rejects.toMatchObject({
      code: 'model_file_missing',
    });
    await expect(readVerified(dir, manifest, 'extra.bin')).rejects.toMatchObject({
      code: 'model_file_unlisted',
    });
  });

  it('rejects malformed lines and paths outside the directory', () => {
    expect(() => parseManifest('not a line\n', 'SHA256SUMS')).toThrow(/SHA256SUMS:1/);
    expect(() => parseManifest(`${'a'.repeat(64)}  ../etc/passwd\n`, 'SHA256SUMS')).toThrow(/escapes/);
  });
});
