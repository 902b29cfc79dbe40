/**
 * Where the SmolLM2-135M-Instruct build lives (`bash test/fixtures/models/build.sh smollm2`, not committed), and
 * whether its suites must run: with CHATMIRROR_REAL_MODEL=1 (CI) a missing build fails instead of skipping.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const SMOLLM2_DIR =
  process.env.CHATMIRROR_SMOLLM2_DIR ||
  join(
    process.env.CHATMIRROR_CACHE || join(homedir(), '.cache', 'chatmirror'),
    'models',
    'smollm2-135m-instruct',
  );
export const SMOLLM2_REQUIRED = process.env.CHATMIRROR_REAL_MODEL === '1';
export const SMOLLM2_BUILT = existsSync(join(SMOLLM2_DIR, 'SHA256SUMS'));
