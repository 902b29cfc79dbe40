/**
 * Image references and the Docker Registry HTTP API V2 (what Debian's docker-registry, Docker Hub and every OCI
 * registry serve), as much as deploying by digest needs: resolve a tag to the digest of its manifest, tell whether
 * a pinned tag has moved, and pull by digest with an error that says what is actually there.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Every manifest kind, index types first. Without an Accept header a registry may convert the manifest (to the
 * legacy schema 1) and report the digest of the conversion rather than of what was pushed.
 */
export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export interface ImageReference {
  /** `host[:port]`, e.g. `127.0.0.1:5000`. */
  registry: string;
  /** Path inside the registry, e.g. `chatmirror/service`. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>`. */
  digest?: string;
}

/** A tag and the digest it pointed at when the stack or test recorded it. */
export interface Pin {
  registry: string;
  repository: string;
  tag: string;
  digest: string;
}

export type PinState = { state: 'current' } | { state: 'moved'; current: string } | { state: 'missing' };

export class RegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryError';
  }
}

export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

/**
 * `registry/repository[:tag][@sha256:…]`. The registry part is required (these references always name the
 * registry they come from; Docker Hub's implicit `docker.io/library/` is not guessed).
 */
export function parseReference(text: string): ImageReference {
  const fail = (why: string): never => {
    throw new RegistryError(`not an image reference (${why}): ${JSON.stringify(text)}`);
  };
  const [named = '', digest, ...extra] = text.split('@');
  if (extra.length > 0) fail('more than one @');
  if (digest !== undefined && !isDigest(digest))
    fail('the digest must be sha256: and 64 lowercase hex digits');
  const slash = named.indexOf('/');
  if (slash <= 0) fail('no registry host');
  const registry = named.slice(0, slash);
  let repository = named.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) fail(`bad tag ${JSON.stringify(tag)}`);
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repository)) {
    fail(`bad repository ${JSON.stringify(repository)}`);
  }
  return { registry, repository, ...(tag === undefined ? {} : { tag }), ...(digest ? { digest } : {}) };
}

export function formatReference(ref: ImageReference): string {
  return (
    `${ref.registry}/${ref.repository}` +
    (ref.tag === undefined ? '' : `:${ref.tag}`) +
    (ref.digest === undefined ? '' : `@${ref.digest}`)
  );
}

function registryUrl(registry: string, path: string): string {
  // Loopback registries speak plain HTTP (Docker allows that for 127.0.0.0/8 only); anything else is HTTPS.
  const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(registry);
  return `${loopback ? 'http' : 'https'}://${registry}/v2/${path}`;
}

/**
 * The digest of the manifest `reference` (a tag or a digest) names, as the registry reports it in
 * Docker-Content-Digest; undefined when there is no such manifest.
 */
export async function resolveDigest(
  registry: string,
  repository: string,
  reference: string,
  fetchImpl: typeof fetch = fetch,
): Promise<string | undefined> {
  const url = registryUrl(registry, `${repository}/manifests/${reference}`);
  const headers = { Accept: MANIFEST_MEDIA_TYPES.join(', ') };
  const head = await fetchImpl(url, { method: 'HEAD', headers });
  if (head.status === 404) return undefined;
  if (!head.ok) throw new RegistryError(`HEAD ${url}: ${head.status} ${head.statusText}`);
  const reported = head.headers.get('docker-content-digest');
  if (reported !== null && isDigest(reported)) return reported;
  // The header is optional in the OCI distribution spec: the digest is then that of the manifest bytes.
  const get = await fetchImpl(url, { headers });
  if (!get.ok) throw new RegistryError(`GET ${url}: ${get.status} ${get.statusText}`);
  return `sha256:${createHash('sha256')
    .update(Buffer.from(await get.arrayBuffer()))
    .digest('hex')}`;
}

/** The repository's tags, each with the digest it points at now. */
export async function listTags(
  registry: string,
  repository: string,
  fetchImpl: typeof fetch = fetch,
): Promise<Map<string, string>> {
  const url = registryUrl(registry, `${repository}/tags/list`);
  const response = await fetchImpl(url);
  if (response.status === 404) return new Map();
  if (!response.ok) throw new RegistryError(`GET ${url}: ${response.status} ${response.statusText}`);
  const { tags } = (await response.json()) as { tags?: string[] | null };
  const entries = await Promise.all(
    (tags ?? []).map(
      async (tag) => [tag, await resolveDigest(registry, repository, tag, fetchImpl)] as const,
    ),
  );
  return new Map(entries.filter((e): e is readonly [string, string] => e[1] !== undefined));
}

/** Whether `pin.tag` still points at `pin.digest`. */
export async function checkPin(pin: Pin, fetchImpl: typeof fetch = fetch): Promise<PinState> {
  const current = await resolveDigest(pin.registry, pin.repository, pin.tag, fetchImpl);
  if (current === undefined) return { state: 'missing' };
  return current === pin.digest ? { state: 'current' } : { state: 'moved', current };
}

/** Throws a RegistryError naming both digests when the tag has moved (or is gone) since it was pinned. */
export async function assertPinned(pin: Pin, fetchImpl: typeof fetch = fetch): Promise<void> {
  const result = await checkPin(pin, fetchImpl);
  const name = `${pin.registry}/${pin.repository}:${pin.tag}`;
  if (result.state === 'moved') {
    throw new RegistryError(
      `${name} has moved since it was pinned: pinned ${pin.digest}, now ${result.current}. ` +
        `Deploy ${pin.registry}/${pin.repository}@${pin.digest} by digest, or re-pin deliberately.`,
    );
  }
  if (result.state === 'missing') {
    throw new RegistryError(`${name} no longer exists (it was pinned at ${pin.digest})`);
  }
}

/**
 * `docker pull registry/repository@sha256:…`. Docker itself refuses content that does not hash to the digest;
 * this turns its terse "manifest unknown" into a message saying which digests the repository's tags do hold,
 * and checks that the pulled image carries the digest it was asked for.
 */
export async function pullByDigest(
  reference: string,
  docker = process.env.DOCKER || 'docker',
): Promise<void> {
  const ref = parseReference(reference);
  if (ref.digest === undefined) throw new RegistryError(`${reference}: pull by digest needs @sha256:…`);
  const pinned = formatReference({ registry: ref.registry, repository: ref.repository, digest: ref.digest });
  try {
    await run(docker, ['pull', '--quiet', pinned]);
  } catch (err) {
    const exists = await resolveDigest(ref.registry, ref.repository, ref.digest).catch(() => undefined);
    if (exists !== undefined) throw new RegistryError(`docker pull ${pinned} failed: ${stderrOf(err)}`);
    const tags = await listTags(ref.registry, ref.repository).catch(() => new Map<string, string>());
    const held =
      tags.size === 0
        ? 'the repository has no tags'
        : `its tags hold ${[...tags].map(([tag, digest]) => `${tag} → ${digest}`).join(', ')}`;
    throw new RegistryError(
      `${pinned}: no image with digest ${ref.digest} in ${ref.registry}/${ref.repository} ` +
        `(${held}); the image was rebuilt or the pin is wrong`,
    );
  }
  const { stdout } = await run(docker, ['image', 'inspect', '--format', '{{json .RepoDigests}}', pinned]);
  const repoDigests = JSON.parse(stdout) as string[];
  if (!repoDigests.includes(pinned)) {
    throw new RegistryError(`pulled ${pinned}, but the local image's digests are ${repoDigests.join(', ')}`);
  }
}

function stderrOf(err: unknown): string {
  const { stderr, message } = err as { stderr?: string; message: string };
  return (stderr || message).trim();
}
