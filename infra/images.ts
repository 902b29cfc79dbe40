/**
 * Which image each container runs: the stack config's `images.<name>` if set, else the image build's digests
 * file. Both must give `repo@sha256:…`; a tag alone is never enough to deploy.
 */
import { IMAGE_NAMES, type ImageName, keyOf } from './config.js';
import { DIGEST_REF } from './verified-image.js';

/** Names the image build may use for each image in its digests file. */
const ALIASES: Record<ImageName, string[]> = {
  service: ['service', 'chatmirror', 'api'],
  prometheus: ['prometheus'],
  nodeExporter: ['nodeExporter', 'node-exporter', 'node_exporter'],
  grafana: ['grafana'],
  alertmanager: ['alertmanager', 'prometheus-alertmanager'],
  haproxy: ['haproxy'],
  redis: ['redis'],
};

/**
 * Reads the digests file written by the image build. Accepted shapes, per image: `"repo@sha256:…"`, or an object
 * with `ref`/`image`/`reference` holding that, or `repository`/`repo`/`name` plus `digest`; optionally nested
 * under `images`. Anything else is an error naming the file and the entry.
 */
export function parseDigestsFile(text: string, file: string): Partial<Record<ImageName, string>> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  if (isRecord(data) && isRecord(data.images)) data = data.images;
  if (!isRecord(data)) throw new Error(`${file}: must be an object of image name → repo@sha256:…`);
  const result: Partial<Record<ImageName, string>> = {};
  for (const name of IMAGE_NAMES) {
    const alias = ALIASES[name].find((a) => data[a] !== undefined);
    if (alias === undefined) continue;
    const ref = refOf(data[alias]);
    if (ref === undefined || !DIGEST_REF.test(ref))
      throw new Error(
        `${file}: entry "${alias}" must be repo@sha256:<64 hex> (or {repository, digest}), got ${JSON.stringify(data[alias])}`,
      );
    result[name] = ref;
  }
  return result;
}

function refOf(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (!isRecord(entry)) return undefined;
  for (const key of ['ref', 'image', 'reference'])
    if (typeof entry[key] === 'string') return entry[key] as string;
  const repo = entry.repository ?? entry.repo ?? entry.name;
  if (typeof repo === 'string' && typeof entry.digest === 'string') return `${repo}@${entry.digest}`;
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Config wins over the digests file; an image the stack needs and neither gives is an error naming the key. */
export function resolveImages(options: {
  configured: Partial<Record<ImageName, string>>;
  fromFile: Partial<Record<ImageName, string>>;
  file: string;
  fileFound: boolean;
  needed: ImageName[];
}): Record<ImageName, string> {
  const resolved: Partial<Record<ImageName, string>> = {};
  const missing: string[] = [];
  for (const name of options.needed) {
    const ref = options.configured[name] ?? options.fromFile[name];
    if (ref === undefined) missing.push(keyOf(['images', name]));
    else resolved[name] = ref;
  }
  if (missing.length > 0)
    throw new Error(
      `no image digest for ${missing.join(', ')}: set it (repo@sha256:…) or build the images so that ${options.file} ` +
        `${options.fileFound ? 'lists it' : 'exists (it does not)'}`,
    );
  return resolved as Record<ImageName, string>;
}
