/**
 * Authentication for the demo (`npm start` with no auth configured): a development signing key and its JWKS kept
 * in `<cacheDir>/dev-auth` (like the dev certificate in dev-tls), reused across runs, plus a way to mint a token
 * with every scope to print beside the curl line. Production configs name their own JWKS or API keys.
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import {
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_JWKS_CACHE_MAX_AGE_MS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  DEFAULT_REQUIRED_CLAIMS,
  SCOPES,
  type ServiceConfig,
} from '../../config/schema.js';
import {
  generateSigningKey,
  JWKS_FILE,
  mintToken,
  PRIVATE_KEY_FILE,
  readJwks,
  readPrivateJwk,
  writeKeySet,
} from './keys.js';

export const DEV_ISSUER = 'chatmirror-dev';
export const DEV_AUDIENCE = 'chatmirror';
export const DEV_SUBJECT = 'dev';
export const DEV_TOKEN_TTL_SECONDS = 3600; // 1 hour, the default auth.jwt.maxTokenAgeSeconds
const DEV_ALGORITHM = 'EdDSA';

export interface DevAuth {
  /** Merge into `config.auth` (it only sets `jwt`). */
  auth: { jwt: NonNullable<ServiceConfig['auth']['jwt']> };
  privateKeyFile: string;
  jwksFile: string;
  /** True when this call made a new key, false when the one from an earlier run was reused. */
  generated: boolean;
  /** A token for subject `dev` with every scope (admin included). */
  mintDevToken(ttlSeconds?: number): Promise<string>;
}

export async function ensureDevAuth(dir: string): Promise<DevAuth> {
  const privateKeyFile = join(dir, PRIVATE_KEY_FILE);
  const jwksFile = join(dir, JWKS_FILE);
  let privateJwk = await reusableKey(privateKeyFile, jwksFile);
  const generated = privateJwk === undefined;
  if (privateJwk === undefined) {
    const key = await generateSigningKey({ alg: DEV_ALGORITHM });
    await writeKeySet(dir, key);
    privateJwk = key.privateJwk;
  }
  // 0700 even when the directory existed: it holds a signing key, if only a development one.
  await chmod(dir, 0o700);

  const jwt = {
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    algorithms: [DEV_ALGORITHM],
    jwksFile,
    jwksCacheMaxAgeMs: DEFAULT_JWKS_CACHE_MAX_AGE_MS,
    clockToleranceSeconds: DEFAULT_CLOCK_TOLERANCE_SECONDS,
    maxTokenAgeSeconds: DEFAULT_MAX_TOKEN_AGE_SECONDS,
    requiredClaims: [...DEFAULT_REQUIRED_CLAIMS],
    scopesClaim: 'scope',
    limitsClaim: 'chatmirror_limits',
  } satisfies DevAuth['auth']['jwt'];
  const signingKey = privateJwk;

  return {
    auth: { jwt },
    privateKeyFile,
    jwksFile,
    generated,
    mintDevToken: (ttlSeconds = DEV_TOKEN_TTL_SECONDS) => {
      if (ttlSeconds > jwt.maxTokenAgeSeconds) {
        throw new RangeError(
          `ttlSeconds: at most ${jwt.maxTokenAgeSeconds} (maxTokenAgeSeconds), got ${ttlSeconds}`,
        );
      }
      return mintToken({
        privateJwk: signingKey,
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
        subject: DEV_SUBJECT,
        scopes: SCOPES,
        ttlSeconds,
      });
    },
  };
}

/** The private key from an earlier run, when it is an EdDSA key whose public half jwks.json publishes. */
async function reusableKey(privateKeyFile: string, jwksFile: string): Promise<JWK | undefined> {
  try {
    const privateJwk = await readPrivateJwk(privateKeyFile);
    const jwks = await readJwks(jwksFile);
    const published = jwks.keys.find((k) => k.kid === privateJwk.kid);
    const usable =
      privateJwk.alg === DEV_ALGORITHM && published !== undefined && published.x === privateJwk.x;
    return usable ? privateJwk : undefined;
  } catch {
    // Missing, unreadable or not JSON: a fresh key replaces it.
    return undefined;
  }
}
