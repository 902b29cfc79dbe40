/**
 * Host scripts run for real with /bin/sh in temporary directories: host files that drop a name, units verified
 * before they replace the installed ones, the Grafana password handed over on stdin only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseStackConfig } from '../../infra/config.js';
import {
  benchUnitName,
  installUnitsScript,
  renderBenchmarkService,
  renderBenchmarkTimer,
} from '../../infra/render/benchmarks.js';
import {
  filesToStdin,
  grafanaPasswordScript,
  MANIFEST,
  removeFilesScript,
  writeFilesScript,
} from '../../infra/render/shell.js';
import { DIGESTS } from './fixtures.js';

const temp = (label: string) => mkdtempSync(join(tmpdir(), `chatmirror-${label}-`));
const gid = () => statSync(tmpdir()).gid;
const sh = (script: string, input: string, env: NodeJS.ProcessEnv = process.env) =>
  spawnSync('sh', ['-c', script], { input, env, encoding: 'utf8' });

describe('host files', () => {
  const write = (dir: string, files: { name: string; content: string }[]) =>
    execFileSync('sh', ['-c', writeFilesScript({ dir, group: gid(), sudo: false })], {
      input: filesToStdin(files.map((f) => ({ ...f, mode: '0640' }))),
    });

  it('a name dropped from the list is removed by the next write, with the directories it leaves empty', () => {
    const dir = join(temp('files'), 'service');
    write(dir, [
      { name: 'config.yaml', content: 'a: 1\n' },
      { name: 'tls/server.key', content: 'KEY' },
      { name: 'jwks.json', content: '{}' },
    ]);
    expect(readFileSync(join(dir, MANIFEST), 'utf8')).toBe('config.yaml\ntls/server.key\njwks.json\n');
    writeFileSync(join(dir, 'operator-notes.txt'), 'not ours');
    write(dir, [{ name: 'config.yaml', content: 'a: 2\n' }]);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe('a: 2\n');
    expect(existsSync(join(dir, 'tls/server.key'))).toBe(false);
    expect(existsSync(join(dir, 'tls'))).toBe(false);
    expect(existsSync(join(dir, 'jwks.json'))).toBe(false);
    expect(readFileSync(join(dir, 'operator-notes.txt'), 'utf8')).toBe('not ours');
    expect(readFileSync(join(dir, MANIFEST), 'utf8')).toBe('config.yaml\n');
    execFileSync('sh', ['-c', removeFilesScript({ dir, names: ['config.yaml'], sudo: false })]);
    expect(readdirSync(dir)).toEqual(['operator-notes.txt']);
  });

  it('never acts on a manifest entry that leaves the directory', () => {
    const root = temp('files');
    const dir = join(root, 'textfile');
    writeFileSync(join(root, 'outside'), 'keep');
    write(dir, [{ name: 'a.prom', content: '1' }]);
    // The textfile directory is group-writable: a container could write the manifest.
    writeFileSync(join(dir, MANIFEST), '../outside\n/etc/hostname\na.prom\n');
    write(dir, [{ name: 'a.prom', content: '2' }]);
    expect(readFileSync(join(root, 'outside'), 'utf8')).toBe('keep');
    expect(readFileSync(join(dir, 'a.prom'), 'utf8')).toBe('2');
  });
});

const ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('benchmark units', () => {
  const bench = {
    ...parseStackConfig({
      'chatmirror:profile': 'staging',
      'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
      'chatmirror:monitoring': { enabled: false },
    }).benchmarks,
    enabled: true,
  };
  const name = benchUnitName('staging');
  const service = renderBenchmarkService({
    stack: 'staging',
    bench,
    image: DIGESTS.service,
    network: 'chatmirror-staging',
    endpoint: 'https://chatmirror:8443',
    user: '10001:10001',
    caFile: '/srv/chatmirror/staging/bench/ca.crt',
    tokenFile: '/srv/chatmirror/staging/bench/bench-token',
    historyDir: '/srv/chatmirror/staging/bench-history',
    textfileDir: '/srv/chatmirror/staging/textfile',
    modelId: 'm',
  });
  const units = (timer: string) =>
    filesToStdin([
      { name: `${name}.service`, content: service, mode: '0644' },
      { name: `${name}.timer`, content: timer, mode: '0644' },
    ]);
  const installed = (dir: string) =>
    Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));

  it.skipIf(!ANALYZE)('a unit systemd-analyze rejects leaves the installed units as they were', () => {
    const dir = temp('units');
    writeFileSync(join(dir, `${name}.service`), 'old service\n');
    writeFileSync(join(dir, `${name}.timer`), 'old timer\n');
    const bad = renderBenchmarkTimer({ stack: 'staging', bench: { ...bench, schedule: 'every full moon' } });
    const run = sh(installUnitsScript({ stack: 'staging', sudo: '', unitDir: dir }), units(bad));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/calendar|OnCalendar|bad unit file setting/i);
    expect(installed(dir)).toEqual({
      [`${name}.service`]: 'old service\n',
      [`${name}.timer`]: 'old timer\n',
    });
  });

  it.skipIf(!ANALYZE)('units that pass are moved into place, then systemd is reloaded', () => {
    const dir = temp('units');
    writeFileSync(join(dir, `${name}.timer`), 'old timer\n');
    const timer = renderBenchmarkTimer({ stack: 'staging', bench });
    const run = sh(installUnitsScript({ stack: 'staging', sudo: '', unitDir: dir }), units(timer));
    // Both files are in place before systemctl runs; whether it then works depends on this machine having systemd.
    expect(installed(dir)).toEqual({ [`${name}.service`]: service, [`${name}.timer`]: timer });
    expect(statSync(join(dir, `${name}.timer`)).mode & 0o777).toBe(0o644);
    if (run.status !== 0) expect(run.stderr).toMatch(/systemd|bus|PID 1/i);
  });
});

describe('Grafana password', () => {
  /** A `docker` first on PATH that records its arguments and stdin: the script's side of the hand-over. */
  function recordingDocker() {
    const bin = temp('bin');
    const log = join(bin, 'calls');
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/sh\nprintf 'argv:%s\\n' "$*" >>'${log}'\nprintf 'stdin:' >>'${log}'\ncat >>'${log}'\n`,
    );
    chmodSync(join(bin, 'docker'), 0o755);
    return { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, log };
  }

  it('reaches grafana cli on stdin, never in any argument', () => {
    const docker = recordingDocker();
    const password = "pa$$ 'word' `x` 1234";
    const run = sh(grafanaPasswordScript('chatmirror-prod-grafana'), `${password}\n`, docker.env);
    expect(run.status, run.stderr).toBe(0);
    const calls = readFileSync(docker.log, 'utf8');
    expect(calls).toBe(
      'argv:exec -i chatmirror-prod-grafana grafana cli --homepath /usr/share/grafana admin reset-admin-password --password-from-stdin\n' +
        `stdin:${password}\n`,
    );
  });

  it('refuses an empty password without calling docker', () => {
    const docker = recordingDocker();
    const run = sh(grafanaPasswordScript('g'), '', docker.env);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('grafanaAdminPassword is empty');
    expect(existsSync(docker.log)).toBe(false);
  });
});
