/**
 * service/Dockerfile read as text, without Docker: the public base is pinned by digest, the runtime is unprivileged
 * and labelled, and the three lists of what enters the build (the Dockerfile's COPYs, /.dockerignore's allow-list
 * and the context images/build.sh streams) agree.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const dockerfile = read('service/Dockerfile');
// Instructions as Docker parses them: comment lines dropped (even inside a continued instruction), then
// continuation lines joined.
const instructions = dockerfile
  .split('\n')
  .filter((line) => !line.trimStart().startsWith('#'))
  .join('\n')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((line) => line.trim() !== '');
const finalStage = instructions.slice(instructions.findLastIndex((line) => line.startsWith('FROM ')));

describe('service/Dockerfile', () => {
  it('defaults to the public Node 24 LTS bookworm slim image pinned by digest, overridable', () => {
    const arg = instructions.find((line) => line.startsWith('ARG BASE_IMAGE='));
    expect(arg).toMatch(/^ARG BASE_IMAGE=node:24-bookworm-slim@sha256:[0-9a-f]{64}$/);
    for (const from of instructions.filter((line) => line.startsWith('FROM '))) {
      expect(from).toMatch(/^FROM \$\{BASE_IMAGE\}( AS \w+)?$/);
    }
  });

  it('runs as a numeric non-root user, with a healthcheck and the CLI as entrypoint', () => {
    const user = finalStage.find((line) => line.startsWith('USER '));
    expect(user).toMatch(/^USER [1-9]\d*:[1-9]\d*$/);
    expect(
      finalStage.some((line) => line.startsWith('HEALTHCHECK ') && line.includes('/app/healthcheck.mjs')),
    ).toBe(true);
    expect(finalStage).toContain('ENTRYPOINT ["node", "/app/service/cli.js"]');
    expect(finalStage).toContain('CMD ["serve"]');
  });

  it('carries the OCI labels from build arguments', () => {
    for (const label of ['source', 'revision', 'version', 'created']) {
      expect(dockerfile).toMatch(new RegExp(`org\\.opencontainers\\.image\\.${label}="\\$\\{[A-Z]+\\}"`));
    }
  });

  it('copies from the context only what /.dockerignore and images/build.sh let in', () => {
    const sources = instructions
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
      .flatMap((line) =>
        line
          .split(/\s+/)
          .slice(1, -1)
          .filter((word) => !word.startsWith('--')),
      )
      // Optional, added by build.sh only: its CA bundle, the C API headers' module zip.
      .filter((source) => source !== 'build-extra-ca.pe[m]' && source !== 'onnxruntime_go.zi[p]');
    const allowed = read('.dockerignore')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1).replace(/\/$/, ''));
    const streamed = /tar -c -C "\$repo" ([^"]+)"\$\{extra_files/
      .exec(read('images/build.sh'))![1]!
      .replace(/\\\n/g, ' ')
      .split(/\s+/)
      .filter((word) => word !== '' && !word.startsWith('--exclude='));
    expect(new Set(sources)).toEqual(new Set(allowed));
    expect(new Set(streamed)).toEqual(new Set(allowed));
  });
});
