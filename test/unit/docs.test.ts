/** The README is the operator's reference: these checks keep it in step with the code it documents. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { stackConfigMarkdown } from '../../infra/reference.js';
import { configReference } from '../../service/config/reference.js';
import { API_ERRORS } from '../../service/errors.js';

const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('opens with exactly the two set-up commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!.trim().split('\n');
    expect(firstBlock).toHaveLength(2);
    expect(firstBlock[0]).toMatch(/npm ci && npm start/);
    expect(firstBlock[1]).toMatch(/npm ci && npm test/);
  });

  it('carries the configuration reference generated from the schema', () => {
    expect(readme).toContain(configReference());
  });

  it('carries the stack-config reference generated from the Pulumi config schema', () => {
    expect(readme).toContain(stackConfigMarkdown());
  });

  it('documents every API error code with its status', () => {
    for (const [code, { status }] of Object.entries(API_ERRORS)) {
      expect(readme).toContain(`| \`${code}\` | ${status} |`);
    }
  });

  it('documents every endpoint', () => {
    for (const route of [
      'POST /v1/chat/completions',
      'POST /v1/completions',
      'GET /v1/models',
      'GET /v1/models/{id}',
      'GET /health',
      'GET /ready',
      'GET /openapi.json',
    ]) {
      expect(readme).toContain(`\`${route}\``);
    }
  });
});
