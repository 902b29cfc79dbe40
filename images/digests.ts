/**
 * images/digests.json: what images/build.sh pushed, for the stacks and tests that deploy or pull it. Everything
 * downstream uses `reference` (repository@digest), never a tag, so that what runs is exactly what was built.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** The default location; `CHATMIRROR_IMAGE_DIGESTS` names another. */
export const DEFAULT_DIGESTS_FILE = fileURLToPath(new URL('./digests.json', import.meta.url));
export const DIGESTS_FILE_ENV = 'CHATMIRROR_IMAGE_DIGESTS';

const Digest = Type.String({ pattern: '^sha256:[0-9a-f]{64}$' });

export const PublishedImageSchema = Type.Object({
  /** `127.0.0.1:5000/chatmirror/service` */
  repository: Type.String({ minLength: 1 }),
  /** The tag it was pushed under (informational: tags move). */
  tag: Type.String({ minLength: 1 }),
  digest: Digest,
  /** `repository@digest`: what to pull or deploy. */
  reference: Type.String({ pattern: '@sha256:[0-9a-f]{64}$' }),
  /** Uncompressed size as `docker image inspect` reports it, in bytes. */
  sizeBytes: Type.Integer({ minimum: 0 }),
});

/** An image of Debian packages on the base (images/<name>/Dockerfile). */
export const PackagedImageSchema = Type.Composite([
  PublishedImageSchema,
  Type.Object({
    /** The Debian package the image exists for, e.g. `prometheus`. */
    package: Type.String({ minLength: 1 }),
    /** Its version as installed (dpkg-query in the image), e.g. `2.42.0+ds-5+deb12u1`; also the image's OCI version. */
    version: Type.String({ minLength: 1 }),
    /** Every package the image's Dockerfile installs (io.chatmirror.debian.install) → its installed version. */
    installed: Type.Record(Type.String(), Type.String()),
    /** The last commit touching images/<name> (`-dirty` when it has uncommitted changes). */
    revision: Type.String(),
    /** CycloneDX SBOM of this image (every Debian package in it), relative to the digests file. */
    sbom: Type.String(),
  }),
]);

/** The Debian-packaged images, by their name in the digests file, and the directory under images/ they come from. */
export const PACKAGED_IMAGES = {
  prometheus: 'prometheus',
  nodeExporter: 'node-exporter',
  alertmanager: 'alertmanager',
  haproxy: 'haproxy',
  redis: 'redis',
} as const;
export type PackagedImageName = keyof typeof PACKAGED_IMAGES;

export const DigestsFileSchema = Type.Object({
  schemaVersion: Type.Literal(1),
  /** `host:port` of the registry the images were pushed to. */
  registry: Type.String({ minLength: 1 }),
  createdAt: Type.String({ minLength: 1 }),
  images: Type.Object({
    service: Type.Composite([
      PublishedImageSchema,
      Type.Object({
        version: Type.String(),
        revision: Type.String(),
        /** CycloneDX SBOM of this image, relative to the digests file. */
        sbom: Type.String(),
      }),
    ]),
    base: PublishedImageSchema,
    prometheus: PackagedImageSchema,
    nodeExporter: PackagedImageSchema,
    alertmanager: PackagedImageSchema,
    haproxy: PackagedImageSchema,
    redis: PackagedImageSchema,
  }),
});

export type PublishedImage = Static<typeof PublishedImageSchema>;
export type PackagedImage = Static<typeof PackagedImageSchema>;
export type DigestsFile = Static<typeof DigestsFileSchema>;

export function digestsFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env[DIGESTS_FILE_ENV] || DEFAULT_DIGESTS_FILE;
}

export async function readDigests(file = digestsFilePath()): Promise<DigestsFile> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file} (run images/build.sh first): ${(err as Error).message}`);
  }
  const error = Value.Errors(DigestsFileSchema, data).First();
  if (error !== undefined) {
    throw new Error(`${file}: ${error.path || '/'} ${error.message} (rebuild it with images/build.sh)`);
  }
  return data as DigestsFile;
}

/** Written to a temporary name and renamed: a reader never sees half a file. */
export async function writeDigests(file: string, digests: DigestsFile): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(digests, null, 2)}\n`);
  await rename(temp, file);
}
