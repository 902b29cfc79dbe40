/**
 * Credential verification, free of Fastify: `createAuthenticator(config.auth)` returns `authenticate(header)`,
 * which turns an `Authorization: Bearer …` header into a `Principal` or throws an `AuthError` whose `reason` is
 * for logs and metrics only. Two credential kinds share the header:
 * - JWTs, verified by jose against an explicit algorithm allow-list, issuer, audience, clock tolerance, maximum
 *   age and required claims, with keys from a local JWKS file or a cached remote JWKS (selected by `kid`);
 * - static API keys (`cmk_<id>_<secret>`, see keys.ts), stored only as sha256 hashes and compared in constant
 *   time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Value } from '@sinclair/typebox/value';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  type FetchImplementation,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import {
  JOSEAlgNotAllowed,
  JOSENotSupported,
  JWKSMultipleMatchingKeys,
  JWKSNoMatchingKey,
  JWSSignatureVerificationFailed,
  JWTClaimValidationFailed,
  JWTExpired,
} from 'jose/errors';
import {
  SCOPES,
  type Scope,
  type ServiceConfig,
  type SubjectLimits,
  SubjectLimitsSchema,
} from '../../config/schema.js';
import { API_KEY_PREFIX, apiKeyId, type JsonWebKeySet, PRIVATE_JWK_MEMBERS } from './keys.js';

/** Longest bearer token accepted, in bytes; longer ones are refused before any parsing or decoding. */
export const MAX_TOKEN_BYTES = 8 * 1024; // 8 KiB: a JWT with a few dozen claims is well under 2 KiB
/** After an unknown kid, the remote JWKS is fetched again at most this often (jose's default). */
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000; // 30 seconds
export const JWKS_FETCH_TIMEOUT_MS = 5_000; // 5 seconds
/** Algorithms never accepted, whatever the config says: unsigned, or HMAC (whose key would be the public key). */
const FORBIDDEN_ALGORITHMS = /^(none|HS\d+)$/i;

/**
 * Why a credential was refused. Clients see one generic message; these are for logs and a metric label, so the
 * list is closed and exported for metrics to pre-register.
 */
export const AUTH_FAILURE_REASONS = [
  'missing', // no Authorization header (or an empty one)
  'wrong_scheme', // Authorization is not `Bearer …`
  'malformed', // not a JWT or API key: bad characters, wrong number of parts, undecodable header or payload
  'too_large', // longer than MAX_TOKEN_BYTES
  'algorithm_not_allowed', // alg not in auth.jwt.algorithms (covers `none` and HS256-with-the-public-key)
  'unsupported_header', // a `crit` extension jose does not understand
  'bad_signature',
  'unknown_key', // no key in the JWKS matches the token's kid/alg
  'expired', // exp is past (beyond clock tolerance)
  'not_yet_valid', // nbf or iat is in the future (beyond clock tolerance)
  'too_old', // iat older than auth.jwt.maxTokenAgeSeconds
  'wrong_issuer',
  'wrong_audience',
  'claims', // a required claim is missing, or sub / the scopes claim / the limits claim is malformed
  'jwt_not_configured', // a JWT arrived but auth.jwt is not set
  'jwks_unavailable', // the remote JWKS could not be fetched or parsed
  'unknown_api_key', // API key format, but no such id or a wrong secret
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export class AuthError extends Error {
  /**
   * `message` is a fixed description of `reason`, safe to log; it never contains the credential. No `cause` is
   * attached: jose's claim errors carry the whole payload, which a logger would then print.
   */
  constructor(readonly reason: AuthFailureReason) {
    super(`authentication failed: ${reason}`);
    this.name = 'AuthError';
  }
}

export interface Principal {
  /** JWT `sub`, or the API key's id. Quotas should key on `${kind}:${subject}` so the two cannot collide. */
  subject: string;
  kind: 'jwt' | 'api_key';
  scopes: ReadonlySet<Scope>;
  limits?: SubjectLimits;
}

/** `admin` implies every scope. */
export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has('admin') || principal.scopes.has(scope);
}

export interface Authenticator {
  /** Resolves to the caller's principal, or rejects with an `AuthError`. */
  authenticate(authorization: string | undefined): Promise<Principal>;
  /**
   * Picks up rotated keys now: re-reads the local JWKS file, or refetches the remote JWKS. On failure it throws
   * and the keys in use stay as they were.
   */
  reload(): Promise<void>;
}

export interface AuthenticatorOptions {
  /** fetch for the remote JWKS (tests pin a CA with it); default: the global fetch. */
  fetch?: FetchImplementation;
  /** Minimum time between remote JWKS fetches triggered by an unknown kid, in ms. */
  jwksCooldownMs?: number;
}

type AuthConfig = ServiceConfig['auth'];
type JwtConfig = NonNullable<AuthConfig['jwt']>;

const BEARER = /^Bearer +(\S+) *$/i; // RFC 6750 §2.1; the scheme is case-insensitive (RFC 9110 §11.1)
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/; // RFC 6750 b64token
const SCOPE_SET = new Set<string>(SCOPES);

/**
 * Builds the verifier once at start-up: reads the local JWKS (or prepares the remote one) and indexes the API
 * keys. Bad auth config (no JWKS source, both sources, private keys in the JWKS, a forbidden algorithm, a
 * duplicate API key id) throws here, naming the setting, before the server listens.
 */
export async function createAuthenticator(
  auth: AuthConfig,
  options: AuthenticatorOptions = {},
): Promise<Authenticator> {
  const apiKeys = indexApiKeys(auth.apiKeys);
  const jwt = auth.jwt === undefined ? undefined : await createJwtVerifier(auth.jwt, options);

  async function authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization.trim() === '') throw new AuthError('missing');
    // Length first, so an oversized header is never run through a regex, base64 decoder or JSON parser.
    if (authorization.length > MAX_TOKEN_BYTES + 'Bearer '.length + 16) throw new AuthError('too_large');
    const match = BEARER.exec(authorization);
    if (match === null) {
      throw new AuthError(/^Bearer\b/i.test(authorization) ? 'malformed' : 'wrong_scheme');
    }
    const token = match[1]!;
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) throw new AuthError('too_large');
    if (token.startsWith(API_KEY_PREFIX)) return apiKeys.verify(token);
    if (!B64TOKEN.test(token) || token.split('.').length !== 3) throw new AuthError('malformed');
    if (jwt === undefined) throw new AuthError('jwt_not_configured');
    return jwt.verify(token);
  }

  return {
    authenticate,
    reload: async () => jwt?.reload(),
  };
}

// ---- API keys ----------------------------------------------------------------------------------------------
function indexApiKeys(entries: AuthConfig['apiKeys']) {
  const byId = new Map<string, { digest: Buffer; scopes: ReadonlySet<Scope>; limits?: SubjectLimits }>();
  for (const [i, entry] of entries.entries()) {
    if (byId.has(entry.id))
      throw new Error(`auth.apiKeys[${i}].id: duplicate id ${JSON.stringify(entry.id)}`);
    const hex = /^sha256:([0-9a-f]{64})$/.exec(entry.hash)?.[1];
    if (hex === undefined) throw new Error(`auth.apiKeys[${i}].hash: must be sha256:<64 hex digits>`);
    byId.set(entry.id, {
      digest: Buffer.from(hex, 'hex'),
      scopes: new Set(entry.scopes),
      ...(entry.limits === undefined ? {} : { limits: Object.freeze({ ...entry.limits }) }),
    });
  }
  // Compared against when the id is unknown, so that an unknown id costs the same hash and comparison as a
  // known one and response times do not reveal which ids exist.
  const decoy = randomBytes(32);

  function verify(key: string): Principal {
    const id = apiKeyId(key);
    if (id === undefined) throw new AuthError('malformed');
    const entry = byId.get(id);
    const digest = createHash('sha256').update(key, 'utf8').digest();
    const equal = timingSafeEqual(digest, entry?.digest ?? decoy);
    if (!equal || entry === undefined) throw new AuthError('unknown_api_key');
    return {
      subject: id,
      kind: 'api_key',
      scopes: entry.scopes,
      ...(entry.limits === undefined ? {} : { limits: entry.limits }),
    };
  }
  return { verify };
}

// ---- JWT ---------------------------------------------------------------------------------------------------
/** Thrown by the key resolver when the remote JWKS cannot be had; mapped to `jwks_unavailable`. */
class JwksUnavailable extends Error {}

async function createJwtVerifier(config: JwtConfig, options: AuthenticatorOptions) {
  const forbidden = config.algorithms.filter((alg) => FORBIDDEN_ALGORITHMS.test(alg));
  if (forbidden.length > 0) {
    throw new Error(`auth.jwt.algorithms: ${forbidden.join(', ')} can never be accepted (asymmetric only)`);
  }
  if ((config.jwksFile === undefined) === (config.jwksUrl === undefined)) {
    throw new Error('auth.jwt: give exactly one of auth.jwt.jwksFile and auth.jwt.jwksUrl');
  }

  let getKey: JWTVerifyGetKey;
  let reload: () => Promise<void>;
  if (config.jwksFile !== undefined) {
    const file = config.jwksFile;
    let local = createLocalJWKSet(await readPublicJwks(file));
    getKey = (header, token) => local(header, token);
    reload = async () => {
      local = createLocalJWKSet(await readPublicJwks(file));
    };
  } else {
    const url = new URL(config.jwksUrl!);
    // The schema already requires https; checked again because a JWKS fetched in clear could be swapped.
    if (url.protocol !== 'https:') throw new Error('auth.jwt.jwksUrl: must be an https:// URL');
    const remote = createRemoteJWKSet(url, {
      cacheMaxAge: config.jwksCacheMaxAgeMs,
      cooldownDuration: options.jwksCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS,
      timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
      ...(options.fetch === undefined ? {} : { [customFetch]: options.fetch }),
    });
    getKey = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        // No key for this kid/alg is the token's fault; anything else (network, status, JSON) is the JWKS's.
        if (
          err instanceof JWKSNoMatchingKey ||
          err instanceof JWKSMultipleMatchingKeys ||
          err instanceof JOSENotSupported
        ) {
          throw err;
        }
        throw new JwksUnavailable();
      }
    };
    reload = () => remote.reload();
  }

  const verifyOptions = {
    algorithms: config.algorithms,
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockToleranceSeconds,
    maxTokenAge: config.maxTokenAgeSeconds,
    // sub is always required: it is the principal's identity.
    requiredClaims: [...new Set([...config.requiredClaims, 'sub'])],
    // `crit` is left at jose's default: a token naming any critical extension is refused (RFC 7515 §4.1.11).
  };

  async function verify(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, verifyOptions));
    } catch (err) {
      throw new AuthError(joseFailureReason(err));
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new AuthError('claims');
    const scopes = parseScopes(payload[config.scopesClaim]);
    const limits = parseLimits(payload[config.limitsClaim]);
    return {
      subject: payload.sub,
      kind: 'jwt',
      scopes,
      ...(limits === undefined ? {} : { limits }),
    };
  }

  return { verify, reload };
}

/** Reads a JWKS file, refusing one that holds private key material (it would be readable by the service). */
async function readPublicJwks(file: string): Promise<JsonWebKeySet> {
  let jwks: unknown;
  try {
    jwks = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`auth.jwt.jwksFile: cannot read ${file}: ${(err as Error).message}`);
  }
  const keys = (jwks as JsonWebKeySet | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error(`auth.jwt.jwksFile: ${file} is not a JWKS with at least one key ({"keys": [...]})`);
  }
  for (const [i, key] of keys.entries()) {
    if (PRIVATE_JWK_MEMBERS.some((member) => Object.hasOwn(key, member))) {
      throw new Error(
        `auth.jwt.jwksFile: ${file} key ${i} holds private key material; publish public keys only`,
      );
    }
  }
  return jwks as JsonWebKeySet;
}

function joseFailureReason(err: unknown): AuthFailureReason {
  if (err instanceof JwksUnavailable) return 'jwks_unavailable';
  if (err instanceof JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  if (err instanceof JWSSignatureVerificationFailed) return 'bad_signature';
  // Several keys match when the token names no kid and the JWKS has more than one key for its alg.
  if (err instanceof JWKSNoMatchingKey || err instanceof JWKSMultipleMatchingKeys) return 'unknown_key';
  if (err instanceof JOSENotSupported) return 'unsupported_header';
  if (err instanceof JWTExpired) return err.claim === 'iat' ? 'too_old' : 'expired';
  if (err instanceof JWTClaimValidationFailed) {
    if (err.reason === 'missing') return 'claims';
    const byClaim: Record<string, AuthFailureReason> = {
      iss: 'wrong_issuer',
      aud: 'wrong_audience',
      nbf: 'not_yet_valid',
      iat: 'not_yet_valid',
    };
    return byClaim[err.claim] ?? 'claims';
  }
  // JWSInvalid, JWTInvalid, any other jose error, or a TypeError from decoding hostile input: fail closed.
  return 'malformed';
}

/** A space-separated string (OAuth's `scope`) or an array; scopes this server does not know are ignored. */
function parseScopes(value: unknown): ReadonlySet<Scope> {
  if (value === undefined) return new Set();
  const names = typeof value === 'string' ? value.split(' ') : value;
  if (!Array.isArray(names) || !names.every((s) => typeof s === 'string')) throw new AuthError('claims');
  return new Set(names.filter((s): s is Scope => SCOPE_SET.has(s)));
}

function parseLimits(value: unknown): SubjectLimits | undefined {
  if (value === undefined) return undefined;
  if (!Value.Check(SubjectLimitsSchema, value)) throw new AuthError('claims');
  return Object.freeze({ ...value });
}
