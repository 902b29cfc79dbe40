/**
 * Key material for the operator CLI (`chatmirror keygen`, `chatmirror token`) and the development auth: JWT
 * signing keys and their JWKS, token minting, and static API keys (only their hash ever reaches the config).
 * Verification lives in credentials.ts; the API key format is defined here, beside the function that makes keys.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import type { Scope, SubjectLimits } from '../../config/schema.js';

/** Signing algorithms `keygen` offers: EdDSA (Ed25519) is small and fast; ES256 and RS256 for older verifiers. */
export const SIGNING_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export const PRIVATE_KEY_FILE = 'private.jwk.json';
export const JWKS_FILE = 'jwks.json';
const PRIVATE_KEY_MODE = 0o600;
const JWKS_MODE = 0o644; // public keys: a JWKS may be served or copied freely
const KEY_DIR_MODE = 0o700;
/** Previous public keys `rotateKeySet` keeps by default: tokens signed just before a rotation stay valid. */
export const DEFAULT_KEEP_PREVIOUS_KEYS = 1;
const RSA_MODULUS_BITS = 2048; // jose's minimum for RS256, and what most verifiers expect

export interface JsonWebKeySet {
  keys: JWK[];
}

export interface SigningKey {
  /** The private key (with its public members), `kid`, `alg` and `use: 'sig'`. A secret. */
  privateJwk: JWK;
  /** A JWKS holding only the public half of `privateJwk`. */
  publicJwks: JsonWebKeySet;
}

/** JWK members that carry private key material (RFC 7518 §6): none may appear in a JWKS. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export async function generateSigningKey(options: {
  alg: SigningAlgorithm;
  kid?: string;
}): Promise<SigningKey> {
  const { alg } = options;
  if (!SIGNING_ALGORITHMS.includes(alg)) {
    throw new TypeError(`alg must be one of ${SIGNING_ALGORITHMS.join(', ')}, got ${String(alg)}`);
  }
  const pair = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' ? { modulusLength: RSA_MODULUS_BITS } : {}),
  });
  const publicJwk = await exportJWK(pair.publicKey);
  // The RFC 7638 thumbprint: stable, derived from the key itself, so the same key always has the same kid.
  const kid = options.kid ?? (await calculateJwkThumbprint(publicJwk, 'sha256'));
  const meta = { kid, alg, use: 'sig' };
  const privateJwk = { ...(await exportJWK(pair.privateKey)), ...meta };
  return { privateJwk, publicJwks: { keys: [{ ...publicJwk, ...meta }] } };
}

/** The public members of a private JWK, with its kid/alg/use. */
export function publicJwkOf(privateJwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...privateJwk };
  for (const member of PRIVATE_JWK_MEMBERS) delete copy[member];
  return copy as JWK;
}

export interface KeySetFiles {
  privateKeyFile: string;
  jwksFile: string;
}

/**
 * Writes `private.jwk.json` (0600) and `jwks.json` (0644) into `dir` (created 0700). Each file is written to a
 * temporary name and renamed, so a verifier reloading jwks.json never reads half a file.
 */
export async function writeKeySet(
  dir: string,
  keys: { privateJwk: JWK; publicJwks: JsonWebKeySet },
): Promise<KeySetFiles> {
  await mkdir(dir, { recursive: true, mode: KEY_DIR_MODE });
  const files = { privateKeyFile: join(dir, PRIVATE_KEY_FILE), jwksFile: join(dir, JWKS_FILE) };
  // Public keys first: a token minted with the new private key must find its kid already published.
  await writeAtomically(files.jwksFile, `${JSON.stringify(keys.publicJwks, null, 2)}\n`, JWKS_MODE);
  await writeAtomically(
    files.privateKeyFile,
    `${JSON.stringify(keys.privateJwk, null, 2)}\n`,
    PRIVATE_KEY_MODE,
  );
  return files;
}

export async function readPrivateJwk(file: string): Promise<JWK> {
  const jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string') {
    throw new Error(`${file} is not a private JWK`);
  }
  if (typeof jwk.alg !== 'string' || typeof jwk.kid !== 'string') {
    throw new Error(`${file}: the key has no "alg" or "kid" (make it with chatmirror keygen)`);
  }
  return jwk;
}

export async function readJwks(file: string): Promise<JsonWebKeySet> {
  const jwks = JSON.parse(await readFile(file, 'utf8')) as JsonWebKeySet;
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) {
    throw new Error(`${file} is not a JWKS ({"keys": [...]})`);
  }
  return jwks;
}

export interface RotatedKeySet extends KeySetFiles {
  /** kid of the new signing key. */
  kid: string;
  /** kids still published besides the new one, newest first. */
  kept: string[];
  /** kids dropped from jwks.json: tokens they signed are refused from now on. */
  removed: string[];
}

/**
 * Rotation: a new signing key replaces private.jwk.json and is published first in jwks.json, while the
 * `keepPrevious` most recent public keys stay published so that tokens they signed remain valid until they
 * expire. Rotate less often than `auth.jwt.maxTokenAgeSeconds` and one previous key is enough.
 */
export async function rotateKeySet(
  dir: string,
  options: { alg?: SigningAlgorithm; keepPrevious?: number } = {},
): Promise<RotatedKeySet> {
  const keepPrevious = options.keepPrevious ?? DEFAULT_KEEP_PREVIOUS_KEYS;
  if (!Number.isInteger(keepPrevious) || keepPrevious < 0) {
    throw new TypeError(`keepPrevious must be an integer ≥ 0, got ${keepPrevious}`);
  }
  const current = await readPrivateJwk(join(dir, PRIVATE_KEY_FILE));
  const published = await readJwks(join(dir, JWKS_FILE));
  const alg = options.alg ?? (current.alg as SigningAlgorithm);
  const next = await generateSigningKey({ alg });
  // The current key first (it may be missing from a hand-edited jwks.json), then the older ones in file order.
  const previous = [publicJwkOf(current), ...published.keys.filter((k) => k.kid !== current.kid)];
  const kept = previous.slice(0, keepPrevious);
  const files = await writeKeySet(dir, {
    privateJwk: next.privateJwk,
    publicJwks: { keys: [...next.publicJwks.keys, ...kept] },
  });
  return {
    ...files,
    kid: next.privateJwk.kid!,
    kept: kept.map((k) => k.kid ?? '(no kid)'),
    removed: previous.slice(keepPrevious).map((k) => k.kid ?? '(no kid)'),
  };
}

export interface MintTokenOptions {
  privateJwk: JWK;
  issuer: string;
  audience: string;
  subject: string;
  scopes: readonly Scope[];
  ttlSeconds: number;
  limits?: SubjectLimits | undefined;
  /** Claim names, as in `auth.jwt.scopesClaim` / `auth.jwt.limitsClaim`. */
  scopesClaim?: string;
  limitsClaim?: string;
  /** Issue time; tests move it. Default: now. */
  now?: Date;
}

/** A signed JWT with iss, aud, sub, iat, nbf (= iat), exp, a random jti and the key's kid in its header. */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const { privateJwk, ttlSeconds } = options;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError(`ttlSeconds must be a positive integer, got ${ttlSeconds}`);
  }
  if (typeof privateJwk.alg !== 'string' || typeof privateJwk.kid !== 'string') {
    throw new TypeError('privateJwk needs "alg" and "kid" (make it with generateSigningKey)');
  }
  const key = await importJWK(privateJwk, privateJwk.alg);
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const claims: Record<string, unknown> = { [options.scopesClaim ?? 'scope']: options.scopes.join(' ') };
  if (options.limits !== undefined) claims[options.limitsClaim ?? 'chatmirror_limits'] = options.limits;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: privateJwk.alg, kid: privateJwk.kid, typ: 'JWT' })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(options.subject)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

// ---- API keys ----------------------------------------------------------------------------------------------
/**
 * `cmk_<id>_<secret>`: the prefix makes a leaked key recognisable to secret scanners and to the server (it is
 * told apart from a JWT without parsing), the id selects the config entry without a search, and the secret is
 * 32 random bytes (256 bits) as 43 base64url characters. The id may itself contain `_`: the secret is always
 * the last 43 characters.
 */
export const API_KEY_PREFIX = 'cmk_';
export const API_KEY_SECRET_BYTES = 32;
export const API_KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/; // as auth.apiKeys[].id in the config schema
const API_KEY_PATTERN = /^cmk_([A-Za-z0-9_-]{1,64})_[A-Za-z0-9_-]{43}$/;

/** The config form of a key's hash: `sha256:<hex>` of the whole key string (prefix and id included). */
export function hashApiKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

/** The key's id, or undefined when `key` is not in the API key format. */
export function apiKeyId(key: string): string | undefined {
  return API_KEY_PATTERN.exec(key)?.[1];
}

export function generateApiKey(id: string): { key: string; hash: string } {
  if (!API_KEY_ID_PATTERN.test(id)) {
    throw new TypeError(`API key id must be 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(id)}`);
  }
  const key = `${API_KEY_PREFIX}${id}_${randomBytes(API_KEY_SECRET_BYTES).toString('base64url')}`;
  return { key, hash: hashApiKey(key) };
}

/**
 * Write-then-rename, as for the dev certificate: readers never see a half-written file, and the mode applies
 * even when replacing a file created with looser permissions (writeFile's mode only applies on creation).
 */
async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode });
  await chmod(temp, mode);
  await rename(temp, file);
}
