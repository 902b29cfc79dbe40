/**
 * The local registry that images/build.sh pushed to: pulls by digest work, a digest it does not hold fails with
 * a message naming what it does hold, and a tag that moved after it was pinned is detected through the registry
 * API. Needs CHATMIRROR_IMAGE_TESTS (see docker.ts).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DigestsFile, readDigests } from '../../images/digests.js';
import {
  assertPinned,
  checkPin,
  parseReference,
  pullByDigest,
  resolveDigest,
} from '../../images/registry.js';
import { DOCKER, docker, IMAGE_TESTS, SKIPPED } from './docker.js';

describe('parseReference', () => {
  it('splits registry, repository, tag and digest', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(parseReference(`127.0.0.1:5000/chatmirror/service:0.1.0@${digest}`)).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'chatmirror/service',
      tag: '0.1.0',
      digest,
    });
    expect(parseReference('127.0.0.1:5000/chatmirror/base:2a4a')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'chatmirror/base',
      tag: '2a4a',
    });
  });

  it('refuses references it would have to guess at', () => {
    expect(() => parseReference('chatmirror')).toThrow(/no registry host/);
    expect(() => parseReference('127.0.0.1:5000/x@sha256:abc')).toThrow(/64 lowercase hex/);
    expect(() => parseReference('127.0.0.1:5000/Upper/Case')).toThrow(/bad repository/);
  });
});

describe.skipIf(!IMAGE_TESTS)(`local registry${SKIPPED}`, () => {
  let digests: DigestsFile;
  beforeAll(async () => {
    digests = await readDigests();
  });

  it('serves every recorded tag at the recorded digest', async () => {
    for (const image of Object.values(digests.images)) {
      const { registry, repository } = parseReference(image.repository);
      expect(await resolveDigest(registry, repository, image.tag)).toBe(image.digest);
    }
  });

  it('pulls the service image by repository@sha256 digest', async () => {
    const { reference } = digests.images.service;
    // Drop the local digest reference (the image stays, under its tag) so the pull must come from the registry.
    await docker(['image', 'rm', reference]).catch(() => undefined);
    await pullByDigest(reference, DOCKER);
    const repoDigests = JSON.parse(
      await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', reference]),
    );
    expect(repoDigests).toContain(reference);
  });

  it('fails a pull by a digest the registry does not hold, saying which digests its tags hold', async () => {
    const { repository, tag, digest } = digests.images.service;
    // A plausible pin gone stale: one hex digit off the real digest.
    const stale = `${digest.slice(0, -1)}${digest.endsWith('0') ? '1' : '0'}`;
    const error = await pullByDigest(`${repository}@${stale}`, DOCKER).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toContain(
      `${repository}@${stale}: no image with digest ${stale} in ${repository} (`,
    );
    expect(error?.message).toContain(`${tag} → ${digest}`);
  });

  it('detects a tag that has moved since it was pinned, and still pulls the pinned digest', async () => {
    const { registry } = digests;
    const repository = 'chatmirror/pin-test';
    const tag = `moved-${Date.now()}`;
    const name = `${registry}/${repository}:${tag}`;
    await docker(['tag', digests.images.service.reference, name]);
    await docker(['push', name]);
    const pinned = await resolveDigest(registry, repository, tag);
    const pin = { registry, repository, tag, digest: pinned! };
    expect(await checkPin(pin)).toEqual({ state: 'current' });

    // Someone rebuilds and pushes under the same tag: same layers, different config, so a different digest.
    await docker(['build', '--quiet', '--label', `org.chatmirror.test.moved=${tag}`, '-t', name, '-'], {
      input: `FROM ${digests.images.service.reference}\n`,
    });
    await docker(['push', name]);
    const state = await checkPin(pin);
    expect(state).toMatchObject({ state: 'moved', current: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(state.state === 'moved' && state.current).not.toBe(pinned);
    await expect(assertPinned(pin)).rejects.toThrow(
      `${name} has moved since it was pinned: pinned ${pinned}, now ${(state as { current: string }).current}`,
    );
    // A digest is immutable: the pinned image is still there to deploy.
    await pullByDigest(`${registry}/${repository}@${pinned}`, DOCKER);
    await docker(['image', 'rm', name, `${registry}/${repository}@${pinned}`]).catch(() => undefined);
  });

  it('listens on loopback only', async () => {
    const { registry } = digests;
    expect(registry).toMatch(/^127\.\d+\.\d+\.\d+:\d+$/);
    // The kernel's own table of listening sockets (state 0A), IPv4 and IPv6: only 127.0.0.0/8 may hold the port.
    const port = Number(registry.split(':')[1]).toString(16).toUpperCase().padStart(4, '0');
    const listeners = ['/proc/net/tcp', '/proc/net/tcp6']
      .flatMap((file) => readFileSync(file, 'utf8').split('\n').slice(1))
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === '0A' && fields[1]?.endsWith(`:${port}`))
      .map((fields) => fields[1]!.split(':')[0]!);
    expect(listeners.length).toBeGreaterThan(0);
    // /proc/net/tcp writes 127.x.y.z as little-endian hex: the last byte of the field is the first octet.
    for (const address of listeners) expect(address).toMatch(/^[0-9A-F]{6}7F$/);
  });
});
