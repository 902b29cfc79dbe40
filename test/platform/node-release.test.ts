/**
 * One Node.js release across the places that name it: images/node-release.sh (what the image's base and
 * test/platform/node-lts.sh fetch), the Dockerfile's default base image, the CLI's notice, and package.json's
 * `engines` (which the shipped release must satisfy).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeVersionNotice, SHIPPED_NODE_MAJOR, SUPPORTED_NODE } from '../../service/node-version.js';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** The variables images/node-release.sh sets, as bash sees them after sourcing it. */
const release = JSON.parse(
  execFileSync(
    'bash',
    [
      '-c',
      'source images/node-release.sh && printf \'{"version":"%s","x64":"%s","arm64":"%s","npm":"%s","npmIntegrity":"%s"}\' ' +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's parameter expansion, not a JS template
        '"$NODE_VERSION" "${NODE_INTEGRITY[x64]}" "${NODE_INTEGRITY[arm64]}" "$NPM_VERSION" "$NPM_INTEGRITY"',
    ],
    { cwd: root, encoding: 'utf8' },
  ),
) as { version: string; x64: string; arm64: string; npm: string; npmIntegrity: string };

describe('the shipped Node.js release', () => {
  it('is pinned by exact version and sha512 integrity for each architecture', () => {
    expect(release.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(release.npm).toMatch(/^\d+\.\d+\.\d+$/);
    for (const integrity of [release.x64, release.arm64, release.npmIntegrity]) {
      expect(integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    }
  });

  it('is the major the CLI and the Dockerfile name, and needs no notice', () => {
    expect(Number(release.version.split('.')[0])).toBe(SHIPPED_NODE_MAJOR);
    const arg = read('service/Dockerfile')
      .split('\n')
      .find((line) => line.startsWith('ARG BASE_IMAGE='));
    expect(arg).toContain(`=node:${SHIPPED_NODE_MAJOR}-bookworm-slim@sha256:`);
    expect(nodeVersionNotice(release.version)).toBeUndefined();
  });

  it("satisfies package.json's engines, which say what is supported", () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).toBe(`>=${SUPPORTED_NODE}`);
    const [major, minor] = release.version.split('.').map(Number) as [number, number];
    const [wantMajor, wantMinor] = SUPPORTED_NODE.split('.').map(Number) as [number, number];
    expect(major > wantMajor || (major === wantMajor && minor >= wantMinor)).toBe(true);
  });
});
