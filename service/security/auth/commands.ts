/**
 * The operator's auth commands, dispatched from cli.ts: `chatmirror keygen` (a signing key pair and JWKS, a
 * rotation, or an API key) and `chatmirror token` (mint a JWT). Each prints what it did and the config to paste;
 * every bad argument is a `UsageError` with one line naming the argument.
 */
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import type { JWK } from 'jose';
import { SCOPES, type Scope, type SubjectLimits, SubjectLimitsSchema } from '../../config/schema.js';
import {
  generateApiKey,
  generateSigningKey,
  mintToken,
  PRIVATE_KEY_FILE,
  readPrivateJwk,
  rotateKeySet,
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
  writeKeySet,
} from './keys.js';

export const KEYGEN_USAGE = `  chatmirror keygen [--alg EdDSA|ES256|RS256] [--dir DIR] [--iss ISS] [--aud AUD]
                                         a JWT signing key (DIR/private.jwk.json) and its JWKS (DIR/jwks.json)
  chatmirror keygen --rotate [--dir DIR]   a new signing key; jwks.json keeps the previous public key
  chatmirror keygen --api-key ID [--scope "chat models:read"] [--limits JSON]
                                         a static API key, printed once, and its config entry`;
export const TOKEN_USAGE = `  chatmirror token --key DIR/private.jwk.json --iss ISS --aud AUD --sub SUBJECT --scope "chat models:read"
                   [--ttl 15m] [--limits '{"requestsPerMinute":10}']
                                         mint a JWT (ttl: 90s, 15m, 2h, 7d); the server refuses tokens older
                                         than auth.jwt.maxTokenAgeSeconds (default 1h) whatever their ttl`;
export const AUTH_USAGE = `${KEYGEN_USAGE}\n${TOKEN_USAGE}`;

export const KEYGEN_HELP = `usage: chatmirror keygen [--alg EdDSA|ES256|RS256] [--dir DIR] [--iss ISS] [--aud AUD]
       chatmirror keygen --rotate [--dir DIR]
       chatmirror keygen --api-key ID [--scope SCOPES] [--limits JSON]

Makes a JWT signing key (DIR/private.jwk.json, mode 0600) and its public JWKS (DIR/jwks.json), and prints the
auth.jwt config to paste; --rotate adds a new signing key and keeps the previous public key in jwks.json, so
tokens it signed stay valid until they expire; --api-key prints a static API key once, with its auth.apiKeys
entry (the config holds only its hash).

options:
  --alg ALG           EdDSA (default), ES256 or RS256
  --dir DIR           where the keys live (default ./chatmirror-keys)
  --iss ISS, --aud AUD  issuer and audience for the printed config (default chatmirror)
  --rotate            a new signing key in an existing --dir
  --api-key ID        a static API key named ID instead of a signing key
  --scope SCOPES      the API key's scopes, space- or comma-separated: chat, completions, models:read,
                      metrics:read, admin (default "chat completions models:read")
  --limits JSON       the API key's limits, e.g. '{"requestsPerMinute":30}'
  -h, --help          this help

examples:
  chatmirror keygen --dir /etc/chatmirror/keys --iss https://chat.example.com --aud chatmirror
  chatmirror keygen --api-key ci-bot --scope completions`;

export const TOKEN_HELP = `usage: chatmirror token --key FILE --iss ISS --aud AUD --sub SUBJECT --scope SCOPES [--ttl 15m] [--limits JSON]

Mints a JWT signed with a key from \`chatmirror keygen\` and prints it. The server refuses tokens older than
auth.jwt.maxTokenAgeSeconds (default 1h) whatever their ttl.

options:
  --key FILE          the private key, DIR/private.jwk.json
  --iss ISS, --aud AUD  must match the server's auth.jwt.issuer and audience
  --sub SUBJECT       who the token is for (quotas are per subject)
  --scope SCOPES      space- or comma-separated: chat, completions, models:read, metrics:read, admin
  --ttl DURATION      90s, 15m, 2h or 7d, at most 366d (default 15m)
  --limits JSON       per-subject limits, e.g. '{"requestsPerMinute":10}'
  -h, --help          this help

example:
  chatmirror token --key chatmirror-keys/private.jwk.json --iss chatmirror --aud chatmirror --sub alice \\
    --scope "chat models:read" --ttl 15m`;

export const DEFAULT_KEY_DIR = 'chatmirror-keys'; // relative to the working directory
export const DEFAULT_TOKEN_TTL = '15m';
const DEFAULT_ISSUER = 'chatmirror';
const DEFAULT_AUDIENCE = 'chatmirror';
const DEFAULT_API_KEY_SCOPES: Scope[] = ['chat', 'completions', 'models:read'];
const MAX_TTL_SECONDS = 366 * 86_400; // a year (and a day): beyond that a static API key is the honest choice

/** A bad command-line argument; cli.ts should print the message and exit 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CommandOutput {
  write(text: string): unknown;
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `15m`, `2h`, `7d` → seconds. */
export function parseTtl(text: string): number {
  const match = /^([1-9]\d{0,8})([smhd])$/.exec(text);
  const seconds = match === null ? Number.NaN : Number(match[1]) * TTL_UNITS[match[2]!]!;
  if (!(seconds <= MAX_TTL_SECONDS)) {
    throw new UsageError(`--ttl must be a duration like 90s, 15m, 2h or 7d (at most 366d), got "${text}"`);
  }
  return seconds;
}

/** `--scope "chat models:read"`, repeated or not, space- or comma-separated. */
export function parseScopes(values: readonly string[]): Scope[] {
  const names = values.flatMap((v) => v.split(/[\s,]+/)).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`--scope must name at least one of ${SCOPES.join(', ')}`);
  for (const name of names) {
    if (!(SCOPES as readonly string[]).includes(name)) {
      throw new UsageError(`--scope: unknown scope "${name}" (one of ${SCOPES.join(', ')})`);
    }
  }
  return [...new Set(names as Scope[])];
}

export function parseLimits(text: string): SubjectLimits {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`--limits must be JSON, e.g. '{"requestsPerMinute":10}', got ${text}`);
  }
  if (!Value.Check(SubjectLimitsSchema, value)) {
    throw new UsageError(
      '--limits may hold only requestsPerMinute, tokensPerMinute and concurrentRequests, each an integer ≥ 0',
    );
  }
  return value;
}

/**
 * node:util parseArgs, strict and without positionals, its errors turned into one-line UsageErrors: every
 * command parses its flags through this, so every bad flag exits 2.
 */
export function parsedArgs<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (err) {
    // node:util's messages already name the option ("Unknown option '--x'", "Option '--sub <value>' argument missing").
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

// ---- keygen ------------------------------------------------------------------------------------------------
export async function keygen(argv: string[], out: CommandOutput = process.stdout): Promise<void> {
  const { values } = parsedArgs(argv, {
    alg: { type: 'string' },
    dir: { type: 'string' },
    rotate: { type: 'boolean' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    'api-key': { type: 'string' },
    scope: { type: 'string', multiple: true },
    limits: { type: 'string' },
  });
  const apiKeyId = values['api-key'];
  if (apiKeyId !== undefined) {
    for (const other of ['alg', 'dir', 'rotate', 'iss', 'aud'] as const) {
      if (values[other] !== undefined) throw new UsageError(`--api-key cannot be combined with --${other}`);
    }
    return apiKey(apiKeyId, values, out);
  }
  for (const other of ['scope', 'limits'] as const) {
    if (values[other] !== undefined) throw new UsageError(`--${other} applies to --api-key only`);
  }

  const alg = values.alg;
  if (alg !== undefined && !(SIGNING_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be one of ${SIGNING_ALGORITHMS.join(', ')}, got "${alg}"`);
  }
  const dir = resolve(values.dir ?? DEFAULT_KEY_DIR);
  const privateKeyFile = join(dir, PRIVATE_KEY_FILE);
  const haveKey = await exists(privateKeyFile);

  if (values.rotate === true) {
    if (!haveKey)
      throw new UsageError(`--rotate: no ${PRIVATE_KEY_FILE} in --dir ${dir}; run keygen without --rotate`);
    const rotated = await rotateKeySet(dir, alg === undefined ? {} : { alg: alg as SigningAlgorithm });
    out.write(
      `wrote ${rotated.privateKeyFile} (new signing key ${rotated.kid}, mode 0600)\n` +
        `wrote ${rotated.jwksFile} (publishes ${[rotated.kid, ...rotated.kept].join(', ')})\n` +
        (rotated.removed.length > 0
          ? `removed ${rotated.removed.join(', ')} from jwks.json: tokens they signed are refused from now on\n`
          : '') +
        '\nReload the service (restart, or SIGHUP) so it reads the new jwks.json before you mint tokens with the\n' +
        'new key; tokens signed by the previous key stay valid until they expire.\n',
    );
    return;
  }

  if (haveKey) {
    throw new UsageError(
      `--dir: ${dir} already holds ${PRIVATE_KEY_FILE}; add --rotate for a new key, or choose another --dir`,
    );
  }
  const key = await generateSigningKey({ alg: (alg as SigningAlgorithm | undefined) ?? 'EdDSA' });
  const files = await writeKeySet(dir, key);
  const iss = values.iss ?? DEFAULT_ISSUER;
  const aud = values.aud ?? DEFAULT_AUDIENCE;
  out.write(
    `wrote ${files.privateKeyFile} (private signing key ${key.privateJwk.kid}, mode 0600: it mints tokens, keep it secret)\n` +
      `wrote ${files.jwksFile} (public keys: the service verifies tokens with this)\n\n` +
      'Service config:\n' +
      'auth:\n' +
      '  jwt:\n' +
      `    issuer: ${JSON.stringify(iss)}\n` +
      `    audience: ${JSON.stringify(aud)}\n` +
      `    algorithms: [${key.privateJwk.alg}]\n` +
      `    jwksFile: ${JSON.stringify(files.jwksFile)}\n\n` +
      'Mint a token:\n' +
      `  chatmirror token --key ${files.privateKeyFile} --iss ${shellWord(iss)} --aud ${shellWord(aud)} ` +
      `--sub alice --scope "chat models:read" --ttl 15m\n`,
  );
}

async function apiKey(
  id: string,
  values: { scope?: string[] | undefined; limits?: string | undefined },
  out: CommandOutput,
): Promise<void> {
  let generated: { key: string; hash: string };
  try {
    generated = generateApiKey(id);
  } catch (err) {
    throw new UsageError(`--api-key: ${(err as Error).message}`);
  }
  const scopes = values.scope === undefined ? DEFAULT_API_KEY_SCOPES : parseScopes(values.scope);
  const limits = values.limits === undefined ? undefined : parseLimits(values.limits);
  const entry = { id, hash: generated.hash, scopes, ...(limits === undefined ? {} : { limits }) };
  out.write(
    `API key "${id}" (shown once: give it to its user now; the config holds only its hash):\n` +
      `${generated.key}\n\n` +
      'Add to auth.apiKeys in the service config (YAML or JSON; CHATMIRROR_AUTH_API_KEYS takes a JSON array):\n' +
      `  - ${JSON.stringify(entry)}\n`,
  );
}

// ---- token -------------------------------------------------------------------------------------------------
export async function token(argv: string[], out: CommandOutput = process.stdout): Promise<void> {
  const { values } = parsedArgs(argv, {
    key: { type: 'string' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    sub: { type: 'string' },
    scope: { type: 'string', multiple: true },
    ttl: { type: 'string', default: DEFAULT_TOKEN_TTL },
    limits: { type: 'string' },
  });
  const keyFile = required('key', values.key);
  const issuer = required('iss', values.iss);
  const audience = required('aud', values.aud);
  const subject = required('sub', values.sub);
  if (values.scope === undefined) throw new UsageError('--scope is required');
  const scopes = parseScopes(values.scope);
  const ttlSeconds = parseTtl(values.ttl);
  const limits = values.limits === undefined ? undefined : parseLimits(values.limits);

  let privateJwk: JWK;
  try {
    privateJwk = await readPrivateJwk(resolve(keyFile));
  } catch (err) {
    throw new UsageError(`--key: cannot use ${keyFile}: ${(err as Error).message.split('\n')[0]}`);
  }
  const jwt = await mintToken({ privateJwk, issuer, audience, subject, scopes, ttlSeconds, limits });
  out.write(`${jwt}\n`);
}

/** Quotes a value for the printed shell line only when it needs it. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:@-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
