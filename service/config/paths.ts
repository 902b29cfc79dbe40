/**
 * Filesystem locations the config schema defaults to. Kept apart from the schema because two of them depend on
 * the environment (or on another setting), which a static schema `default` cannot express.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The model that ships with the repository (test/fixtures/models/tiny-llama), resolved from the repo root. */
export const BUNDLED_MODEL_DIR = fileURLToPath(
  new URL('../../test/fixtures/models/tiny-llama', import.meta.url),
);

/** `$CHATMIRROR_CACHE`, else `~/.cache/chatmirror`: where generated artefacts such as the dev certificate live. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  return env.CHATMIRROR_CACHE || join(homedir(), '.cache', 'chatmirror');
}

/** Default for `server.tls.devCertDir`. */
export function defaultDevCertDir(env: NodeJS.ProcessEnv): string {
  return join(cacheDir(env), 'dev-tls');
}
