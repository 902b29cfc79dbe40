/**
 * What images/build.sh records, without Docker: the image SBOM (production packages only, the base's Debian
 * packages and Node.js, the image as subject), the digests file's validation, and the registry client against a
 * registry played by a fake fetch.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type DigestsFile, PACKAGED_IMAGES, readDigests, writeDigests } from '../../images/digests.js';
import {
  assertPinned,
  checkPin,
  listTags,
  MANIFEST_MEDIA_TYPES,
  resolveDigest,
} from '../../images/registry.js';
import {
  type CdxBom,
  imageSbom,
  packagedImageSbom,
  parseDpkgQuery,
  productionPackages,
} from '../../images/sbom.js';

const root = mkdtempSync(join(tmpdir(), 'chatmirror-publish-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const digest = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;

describe('imageSbom', () => {
  const lockfile = {
    packages: {
      '': { name: 'chatmirror', version: '0.1.0' },
      'node_modules/fastify': { version: '5.12.8' },
      'node_modules/vitest': { version: '4.1.12', dev: true },
      'node_modules/fastify/node_modules/semver': { version: '7.7.0' },
      'node_modules/@scope/pkg': { version: '1.0.0', optional: true },
    },
  };
  const npmSbom: CdxBom = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    metadata: {
      component: { 'bom-ref': 'chatmirror@0.1.0', type: 'library', name: 'main', version: '0.1.0' },
    },
    components: [
      { 'bom-ref': 'fastify@5.12.8', type: 'library', name: 'fastify', version: '5.12.8' },
      { 'bom-ref': 'vitest@4.1.12', type: 'library', name: 'vitest', version: '4.1.12' },
      { 'bom-ref': 'semver@7.7.0', type: 'library', name: 'semver', version: '7.7.0' },
      { 'bom-ref': '@scope/pkg@1.0.0', type: 'library', name: '@scope/pkg', version: '1.0.0' },
    ],
    dependencies: [
      { ref: 'chatmirror@0.1.0', dependsOn: ['fastify@5.12.8', 'vitest@4.1.12'] },
      { ref: 'fastify@5.12.8', dependsOn: ['semver@7.7.0'] },
      { ref: 'vitest@4.1.12', dependsOn: [] },
    ],
  };
  const image = { repository: '127.0.0.1:5000/chatmirror/service', tag: '0.1.0', digest: digest('image') };
  const sbom = imageSbom({
    npmSbom,
    lockfile,
    debPackages: parseDpkgQuery('libc6\t2.36-9+deb12u10\tamd64\nbash\t5.2.15-2+b7\tamd64\n'),
    debianVersion: '12.11',
    nodeVersion: '20.20.2',
    image,
    timestamp: '2026-01-01T00:00:00.000Z',
  });

  it('keeps the production npm packages and drops the development ones', () => {
    expect(productionPackages(lockfile)).toEqual(
      new Set(['fastify@5.12.8', 'semver@7.7.0', '@scope/pkg@1.0.0']),
    );
    const names = sbom.components.map((c) => `${c.name}@${c.version}`);
    expect(names).toEqual(expect.arrayContaining(['fastify@5.12.8', 'semver@7.7.0', '@scope/pkg@1.0.0']));
    expect(names).not.toContain('vitest@4.1.12');
    expect(JSON.stringify(sbom.dependencies)).not.toContain('vitest');
  });

  it('makes the image, by digest, the subject, and lists what the base contributes', () => {
    expect(sbom.metadata.component).toMatchObject({
      type: 'container',
      name: image.repository,
      version: '0.1.0',
      purl: `pkg:oci/service@sha256%3A${image.digest.slice(7)}?repository_url=${image.repository}&tag=0.1.0`,
    });
    expect(sbom.metadata.lifecycles).toEqual([{ phase: 'post-build' }]);
    expect(sbom.components).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'application', name: 'chatmirror', version: '0.1.0' }),
        expect.objectContaining({ type: 'platform', name: 'node', version: '20.20.2' }),
        expect.objectContaining({ type: 'operating-system', name: 'debian', version: '12.11' }),
        expect.objectContaining({
          name: 'libc6',
          purl: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12',
        }),
      ]),
    );
  });

  it('refuses dpkg-query output it cannot read', () => {
    expect(() => parseDpkgQuery('libc6 2.36\n')).toThrow(/not a dpkg-query line/);
  });
});

describe('packagedImageSbom', () => {
  it("lists every Debian package and the base's Node.js, with the image by digest as the subject", () => {
    const image = {
      repository: '127.0.0.1:5000/chatmirror/redis',
      tag: '7.0.15-1_deb12u10',
      digest: digest('r'),
    };
    const sbom = packagedImageSbom({
      debPackages: parseDpkgQuery(
        'redis-server\t5:7.0.15-1~deb12u10\tamd64\nlibc6\t2.36-9+deb12u10\tamd64\n',
      ),
      debianVersion: '12.11',
      nodeVersion: '20.20.2',
      image,
      timestamp: '2026-01-01T00:00:00.000Z',
    });
    expect(sbom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.5' });
    expect(sbom.metadata.component).toMatchObject({
      type: 'container',
      hashes: [{ alg: 'SHA-256', content: image.digest.slice(7) }],
    });
    expect(sbom.components.map((c) => `${c.name}@${c.version}`)).toEqual([
      'node@20.20.2',
      'debian@12.11',
      'redis-server@5:7.0.15-1~deb12u10',
      'libc6@2.36-9+deb12u10',
    ]);
    expect(sbom.components[2]?.purl).toBe(
      'pkg:deb/debian/redis-server@5%3A7.0.15-1~deb12u10?arch=amd64&distro=debian-12',
    );
    expect(JSON.stringify(sbom)).not.toContain('npm');
  });
});

describe('digests file', () => {
  const image = (name: string) => ({
    repository: `127.0.0.1:5000/chatmirror/${name}`,
    tag: '0.1.0',
    digest: digest(name),
    reference: `127.0.0.1:5000/chatmirror/${name}@${digest(name)}`,
    sizeBytes: 1,
  });
  const valid: DigestsFile = {
    schemaVersion: 1,
    registry: '127.0.0.1:5000',
    createdAt: '2026-01-01T00:00:00.000Z',
    images: {
      service: { ...image('service'), version: '0.1.0', revision: 'abc', sbom: 'sbom.cdx.json' },
      base: image('base'),
      ...Object.fromEntries(
        Object.entries(PACKAGED_IMAGES).map(([key, dir]) => [
          key,
          {
            ...image(dir),
            package: dir,
            version: '1.0-1',
            installed: { [dir]: '1.0-1', wget: '1.21.3-1+deb12u1' },
            revision: 'abc',
            sbom: `sbom-${dir}.cdx.json`,
          },
        ]),
      ),
    } as DigestsFile['images'],
  };

  it('round-trips', async () => {
    const file = join(root, 'digests.json');
    await writeDigests(file, valid);
    expect(await readDigests(file)).toEqual(valid);
  });

  it('names the bad field, and says how to get a good file', async () => {
    const file = join(root, 'bad.json');
    const bad = structuredClone(valid);
    bad.images.service.digest = 'sha256:short';
    writeFileSync(file, JSON.stringify(bad));
    await expect(readDigests(file)).rejects.toThrow(
      /bad\.json: \/images\/service\/digest .*rebuild it with images\/build\.sh/,
    );
    await expect(readDigests(join(root, 'absent.json'))).rejects.toThrow(/run images\/build\.sh first/);
  });
});

describe('registry client', () => {
  /** A registry holding `manifests` (tag or digest → manifest bytes), answering as docker-registry does. */
  function fakeRegistry(manifests: Record<string, string>, options: { digestHeader?: boolean } = {}) {
    const requests: { method: string; url: string; accept: string | null }[] = [];
    const fetchImpl = (async (url: string, init: RequestInit = {}) => {
      const headers = new Headers(init.headers);
      requests.push({ method: init.method ?? 'GET', url, accept: headers.get('accept') });
      const path = new URL(url).pathname;
      if (path.endsWith('/tags/list')) {
        const tags = Object.keys(manifests).filter((k) => !k.startsWith('sha256:'));
        return Response.json({ name: 'chatmirror/service', tags });
      }
      const reference = path.slice(path.lastIndexOf('/') + 1);
      const body = manifests[reference];
      if (body === undefined) return new Response(null, { status: 404 });
      const responseHeaders: Record<string, string> =
        options.digestHeader === false ? {} : { 'docker-content-digest': digest(body) };
      return new Response(init.method === 'HEAD' ? null : body, { headers: responseHeaders });
    }) as typeof fetch;
    return { fetchImpl, requests };
  }

  it('asks for every manifest kind, so the registry reports the digest of what was pushed', async () => {
    const { fetchImpl, requests } = fakeRegistry({ '0.1.0': 'manifest A' });
    expect(await resolveDigest('127.0.0.1:5000', 'chatmirror/service', '0.1.0', fetchImpl)).toBe(
      digest('manifest A'),
    );
    expect(requests).toEqual([
      {
        method: 'HEAD',
        url: 'http://127.0.0.1:5000/v2/chatmirror/service/manifests/0.1.0',
        accept: MANIFEST_MEDIA_TYPES.join(', '),
      },
    ]);
  });

  it('hashes the manifest itself when the registry sends no Docker-Content-Digest', async () => {
    const { fetchImpl } = fakeRegistry({ '0.1.0': 'manifest A' }, { digestHeader: false });
    expect(await resolveDigest('127.0.0.1:5000', 'chatmirror/service', '0.1.0', fetchImpl)).toBe(
      digest('manifest A'),
    );
  });

  it('speaks HTTPS to anything but loopback', async () => {
    const { fetchImpl, requests } = fakeRegistry({});
    await resolveDigest('registry.example.com', 'chatmirror/service', '0.1.0', fetchImpl);
    expect(requests[0]?.url).toBe('https://registry.example.com/v2/chatmirror/service/manifests/0.1.0');
  });

  it('tells a current pin from a moved or missing tag, and says both digests when it moved', async () => {
    const pin = {
      registry: '127.0.0.1:5000',
      repository: 'chatmirror/service',
      tag: '0.1.0',
      digest: digest('A'),
    };
    expect(await checkPin(pin, fakeRegistry({ '0.1.0': 'A' }).fetchImpl)).toEqual({ state: 'current' });
    const moved = fakeRegistry({ '0.1.0': 'B' }).fetchImpl;
    expect(await checkPin(pin, moved)).toEqual({ state: 'moved', current: digest('B') });
    await expect(assertPinned(pin, moved)).rejects.toThrow(
      `127.0.0.1:5000/chatmirror/service:0.1.0 has moved since it was pinned: pinned ${digest('A')}, now ${digest('B')}`,
    );
    await expect(assertPinned(pin, fakeRegistry({}).fetchImpl)).rejects.toThrow(/no longer exists/);
  });

  it('lists tags with their digests', async () => {
    const { fetchImpl } = fakeRegistry({ '0.1.0': 'A', latest: 'B' });
    expect(await listTags('127.0.0.1:5000', 'chatmirror/service', fetchImpl)).toEqual(
      new Map([
        ['0.1.0', digest('A')],
        ['latest', digest('B')],
      ]),
    );
  });
});
