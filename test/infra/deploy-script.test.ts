/** `npm run up` / `npm run down` (stacks/deploy.sh) where no Pulumi CLI exists, as on this machine and in CI. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROJECT_DIR } from './plan.js';

const script = `${PROJECT_DIR}/stacks/deploy.sh`;
// A PATH with bash, node and coreutils but certainly no pulumi.
const PATH = [...new Set([process.execPath.replace(/\/node$/, ''), '/usr/bin', '/bin'])].join(':');

describe('stacks/deploy.sh', () => {
  it('without a Pulumi CLI says so, how to install it and which provider versions, and exits 3', () => {
    const run = spawnSync('bash', [script, 'up'], { encoding: 'utf8', env: { PATH, HOME: '/nonexistent' } });
    expect(run.status).toBe(3);
    expect(run.stderr).toContain('npm run up needs the Pulumi CLI');
    expect(run.stderr).toContain('get.pulumi.com');
    for (const name of ['docker', 'command', 'tls']) {
      const version = (
        JSON.parse(readFileSync(`${PROJECT_DIR}/node_modules/@pulumi/${name}/package.json`, 'utf8')) as {
          pulumi: { version: string };
        }
      ).pulumi.version;
      expect(run.stderr).toContain(`pulumi plugin install resource ${name} ${version}`);
    }
  });

  it('refuses an unknown action with its usage and exit 2', () => {
    const run = spawnSync('bash', [script, 'deploy'], { encoding: 'utf8', env: { PATH } });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^usage: stacks\/deploy.sh up\|down/);
  });

  it('is what npm run up and npm run down call', () => {
    const scripts = (
      JSON.parse(readFileSync(`${PROJECT_DIR}/package.json`, 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.up).toBe('bash stacks/deploy.sh up');
    expect(scripts.down).toBe('bash stacks/deploy.sh down');
  });
});
