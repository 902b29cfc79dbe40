/**
 * Images by digest only: a tag (`latest` or any other) can be moved to different bytes after review, a digest
 * cannot. The program resolves tags to digests itself (infra/verified-image.ts); this stops a reference that
 * skipped that from deploying.
 */
import { type Finding, resourcePolicy } from './lib/policy.js';
import { docker } from './lib/resources.js';

const DIGEST_REF = /@sha256:[0-9a-f]{64}$/;

export function checkDigestReference(ref: string | undefined, property: string): Finding[] {
  if (ref !== undefined && DIGEST_REF.test(ref)) return [];
  const shown = JSON.stringify(ref ?? '');
  const tag =
    /:latest$/.test(ref ?? '') || !/[:@]/.test((ref ?? '').split('/').pop() ?? '') ? 'latest' : 'a tag';
  return [
    {
      problem: `${property} ${shown} names ${tag}, not an @sha256: digest`,
      fix: 'pin REPOSITORY@sha256:<64 hex> (images/digests.json or chatmirror:images in the stack config)',
    },
  ];
}

export const imagePolicies = [
  resourcePolicy(
    { name: 'container-image-digest', description: 'Every container image is an @sha256: digest reference.' },
    docker.Container,
    (c) => checkDigestReference(c.image, 'image'),
  ),
  resourcePolicy(
    { name: 'remote-image-digest', description: 'Every image pulled is an @sha256: digest reference.' },
    docker.RemoteImage,
    (image) => checkDigestReference(image.name, 'name'),
  ),
];
