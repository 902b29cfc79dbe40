/** Capacity, host scripts (run for real in a temp dir), image digests, benchmark units, SSH options. */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseStackConfig } from '../../infra/config.js';
import { parseRemoteFacts } from '../../infra/host-capacity.js';
import { parseDigestsFile, resolveImages } from '../../infra/images.js';
import { renderBenchmarkService, renderBenchmarkTimer } from '../../infra/render/benchmarks.js';
import {
  type CapacityInputs,
  evaluateCapacity,
  GiB,
  type HostFacts,
  PROFILE_FLOORS,
} from '../../infra/render/capacity.js';
import { metricNamesIn } from '../../infra/render/metrics.js';
import {
  filesToStdin,
  removeFilesScript,
  shq,
  verifyModelScript,
  writeFilesScript,
} from '../../infra/render/shell.js';
import { hostFactsScript, knownHostsLine, sshCommandLine, sshOptions } from '../../infra/render/ssh.js';
import { DIGESTS, DIGESTS_FILE, digest } from './fixtures.js';
import { PROJECT_DIR } from './plan.js';

const PROD: CapacityInputs = {
  profile: 'prod',
  modelBytes: 1.3e9,
  replicas: 2,
  replicaMemoryMb: 6144,
  replicaCpus: 3,
  logBytesPerReplica: 500 * 1024 ** 2,
  monitoring: { prometheusMemoryMb: 2048, grafanaMemoryMb: 512, retentionSizeGb: 40 },
  benchmarkMemoryMb: 1024,
};
const BIG: HostFacts = {
  cpuCores: 16,
  memoryBytes: 64 * GiB,
  diskFreeBytes: 500e9,
  diskPath: '/var/lib/docker',
  dockerVersion: '27.3.1',
  dockerApiVersion: '1.47',
  gpus: [],
};

describe('capacity', () => {
  it('holds prod to at least 16 GB, 4 cores and 50 GB disk', () => {
    expect(PROFILE_FLOORS.prod).toEqual({ memoryBytes: 16 * GiB, cpuCores: 4, diskFreeBytes: 50e9 });
    const small = evaluateCapacity(
      {
        ...PROD,
        replicas: 1,
        replicaMemoryMb: 4096,
        replicaCpus: 1,
        monitoring: undefined,
        benchmarkMemoryMb: 0,
      },
      {
        ...BIG,
        cpuCores: 3,
        memoryBytes: 15 * GiB,
        diskFreeBytes: 49e9,
      },
    );
    expect(small.rows.filter((r) => !r.ok).map((r) => r.resource)).toEqual([
      'memory',
      'cpu cores',
      'disk free',
    ]);
    expect(small.table).toMatch(/memory +16\.0 GiB +15\.0 GiB +SHORT/);
  });

  it('counts the successors that run beside the old replicas during a roll, and the balancer and quota store', () => {
    const rolling = { ...PROD, surgeReplicas: 2, sidecarMemoryMb: 384 };
    const memory = evaluateCapacity(rolling, BIG).rows.find((r) => r.resource === 'memory')!;
    // 4 × 6 GiB + 384 MiB + 2.5 GiB monitoring + 128 MiB node-exporter + 128 MiB Alertmanager + 1 GiB bench
    // + 1 GiB OS
    expect(memory.need).toBe('29.1 GiB');
    expect(memory.why).toContain('2 (+2 while rolling) × 6144 MiB limits + balancer and quota store');
    expect(evaluateCapacity(rolling, { ...BIG, memoryBytes: 24 * GiB }).ok).toBe(false);
  });

  it('derives needs from the replicas, the model and monitoring when they exceed the floor', () => {
    const report = evaluateCapacity(PROD, BIG);
    expect(report.ok).toBe(true);
    const memory = report.rows.find((r) => r.resource === 'memory')!;
    // 2 × 6 GiB + 2.5 GiB monitoring + 128 MiB node-exporter + 128 MiB Alertmanager + 1 GiB bench + 1 GiB OS
    expect(memory.need).toBe('16.8 GiB');
    const disk = report.rows.find((r) => r.resource === 'disk free')!;
    expect(disk.need).toBe('50.0 GB');
    expect(
      evaluateCapacity({ ...PROD, monitoring: { ...PROD.monitoring!, retentionSizeGb: 100 } }, BIG).rows.find(
        (r) => r.resource === 'disk free',
      )!.need,
    ).toBe('109.3 GB');
  });

  it('checks that the model fits a replica and that the Docker Engine API is one the program supports', () => {
    const report = evaluateCapacity(
      { ...PROD, modelBytes: 7e9 },
      { ...BIG, dockerVersion: '19.03.15', dockerApiVersion: '1.40' },
    );
    expect(report.rows.filter((r) => !r.ok).map((r) => r.resource)).toEqual(['docker', 'model fits replica']);
    expect(report.table).toContain('raise serving.memoryMb');
    expect(report.table).toMatch(/docker +Engine API ≥ 1\.41 +19\.03\.15 \(API 1\.40\) +SHORT/);
    // Debian bookworm's docker.io (20.10, API 1.41) is enough: the program declares only what it grants.
    const debian = { ...BIG, dockerVersion: '20.10.24+dfsg1', dockerApiVersion: '1.41' };
    expect(evaluateCapacity(PROD, debian).rows.find((r) => r.resource === 'docker')!.ok).toBe(true);
    const unreachable = { ...BIG, dockerVersion: undefined, dockerApiVersion: undefined };
    expect(evaluateCapacity(PROD, unreachable).rows.find((r) => r.resource === 'docker')).toMatchObject({
      have: 'not reachable',
      ok: false,
    });
  });

  it('reads the remote probe', () => {
    expect(
      parseRemoteFacts(
        '{"cpuCores":8,"memoryBytes":34359738368,"diskFreeBytes":1e11,"diskPath":"/var/lib/docker","dockerVersion":"27.0.3","dockerApiVersion":"1.46","dockerNofileHard":"1048576","gpus":"GPU 0: NVIDIA L4|GPU 1: NVIDIA L4"}\n',
      ),
    ).toEqual({
      cpuCores: 8,
      memoryBytes: 34359738368,
      diskFreeBytes: 1e11,
      diskPath: '/var/lib/docker',
      dockerVersion: '27.0.3',
      dockerApiVersion: '1.46',
      dockerNofileHard: 1048576,
      gpus: ['GPU 0: NVIDIA L4', 'GPU 1: NVIDIA L4'],
    });
    expect(() => parseRemoteFacts('bash: nproc: not found')).toThrow(/printed no JSON/);
  });

  it('the probe script runs and prints the facts here', () => {
    const out = execFileSync('sh', ['-s'], { input: hostFactsScript('/') }).toString();
    const facts = parseRemoteFacts(out);
    expect(facts.cpuCores).toBeGreaterThan(0);
    expect(facts.memoryBytes).toBeGreaterThan(GiB / 2);
    expect(facts.diskFreeBytes).toBeGreaterThan(0);
  });
});

describe('host files', () => {
  const gid = Number(execFileSync('id', ['-g']).toString().trim());

  it('are written atomically with their modes and the shared group, and removed exactly', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'chatmirror-files-')), 'service');
    const files = [
      { name: 'config.yaml', content: 'server:\n  port: 8443\n', mode: '0640' },
      {
        name: 'tls/server.key',
        content: "-----BEGIN PRIVATE KEY-----\nit's\n-----END PRIVATE KEY-----\n",
        mode: '0600',
      },
    ];
    execFileSync('sh', ['-c', writeFilesScript({ dir, group: gid, sudo: false })], {
      input: filesToStdin(files),
    });
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe(files[0]!.content);
    expect(readFileSync(join(dir, 'tls/server.key'), 'utf8')).toBe(files[1]!.content);
    expect(statSync(join(dir, 'tls/server.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'config.yaml')).gid).toBe(gid);
    writeFileSync(join(dir, 'operator-notes.txt'), 'not ours');
    execFileSync('sh', ['-c', removeFilesScript({ dir, names: files.map((f) => f.name), sudo: false })]);
    expect(existsSync(join(dir, 'config.yaml'))).toBe(false);
    expect(existsSync(join(dir, 'tls'))).toBe(false);
    expect(existsSync(join(dir, 'operator-notes.txt'))).toBe(true);
  });

  it('refuse names that leave the directory, and quote anything', () => {
    expect(() => filesToStdin([{ name: '../etc/passwd', content: '', mode: '0640' }])).toThrow(
      /relative path/,
    );
    expect(() => filesToStdin([{ name: 'a', content: '', mode: '777' }])).toThrow(/octal/);
    expect(execFileSync('sh', ['-c', `printf %s ${shq("it's $(rm -rf /) `x`")}`]).toString()).toBe(
      "it's $(rm -rf /) `x`",
    );
    expect(writeFilesScript({ dir: '/srv/x', group: 10001, sudo: true })).toContain('sudo -n chgrp 10001');
  });
});

describe('model verification', () => {
  const model = join(PROJECT_DIR, 'test/fixtures/models/tiny-llama');
  const pin = '2bfc5a700a3c83f24527b608dcd2d89367bd0d0b624245cf8bc2e90b9ae13fd9';

  it('passes the bundled model against its pin', () => {
    expect(
      execFileSync('sh', ['-c', verifyModelScript({ dir: model, manifestSha256: pin })]).toString(),
    ).toContain(`verified ${pin}`);
  });

  it('refuses a different manifest and a tampered file', () => {
    const run = (dir: string, hash: string) => () =>
      execFileSync('sh', ['-c', verifyModelScript({ dir, manifestSha256: hash })], { stdio: 'pipe' });
    expect(run(model, 'f'.repeat(64))).toThrow(/does not match model.manifestSha256/);
    const copy = join(mkdtempSync(join(tmpdir(), 'chatmirror-model-')), 'tiny-llama');
    cpSync(model, copy, { recursive: true });
    writeFileSync(join(copy, 'config.json'), '{}');
    const output = (() => {
      try {
        run(copy, pin)();
        return 'passed';
      } catch (err) {
        const { stdout, stderr } = err as { stdout: Buffer; stderr: Buffer };
        return `${stdout}${stderr}`;
      }
    })();
    expect(output).toContain('config.json: FAILED');
  });
});

describe('images', () => {
  it('read the digests file in each shape the image build may write', () => {
    expect(parseDigestsFile(DIGESTS_FILE, 'images/digests.json')).toEqual(DIGESTS);
    expect(parseDigestsFile(JSON.stringify({ images: { chatmirror: DIGESTS.service } }), 'd.json')).toEqual({
      service: DIGESTS.service,
    });
    expect(() =>
      parseDigestsFile(
        JSON.stringify({ service: 'registry.example.com/chatmirror:latest' }),
        'images/digests.json',
      ),
    ).toThrow('images/digests.json: entry "service" must be repo@sha256:<64 hex>');
  });

  it("read the image build's own format (schemaVersion 1: images.<name>.reference)", () => {
    const file = JSON.stringify({
      schemaVersion: 1,
      registry: '127.0.0.1:5000',
      createdAt: '2026-11-27T08:56:52.223Z',
      images: {
        service: {
          repository: '127.0.0.1:5000/chatmirror/service',
          tag: '0.1.0',
          digest: digest('service'),
          reference: `127.0.0.1:5000/chatmirror/service@${digest('service')}`,
          sizeBytes: 353818704,
        },
        base: {
          repository: '127.0.0.1:5000/chatmirror/base',
          tag: 'x',
          digest: digest('base'),
          reference: `127.0.0.1:5000/chatmirror/base@${digest('base')}`,
        },
      },
    });
    expect(parseDigestsFile(file, 'images/digests.json')).toEqual({
      service: `127.0.0.1:5000/chatmirror/service@${digest('service')}`,
    });
  });

  it.skipIf(!existsSync(join(PROJECT_DIR, 'images/digests.json')))(
    'read images/digests.json as the build left it',
    () => {
      const parsed = parseDigestsFile(
        readFileSync(join(PROJECT_DIR, 'images/digests.json'), 'utf8'),
        'images/digests.json',
      );
      expect(parsed.service).toMatch(/@sha256:[0-9a-f]{64}$/);
    },
  );

  it('prefer config over the file and name the key of a missing digest', () => {
    const own = `registry.example.com/own@${digest('own')}`;
    expect(
      resolveImages({
        configured: { service: own },
        fromFile: DIGESTS,
        file: 'f',
        fileFound: true,
        needed: ['service'],
      }),
    ).toEqual({ service: own });
    expect(() =>
      resolveImages({
        configured: {},
        fromFile: {},
        file: 'images/digests.json',
        fileFound: false,
        needed: ['service', 'grafana'],
      }),
    ).toThrow(
      'no image digest for chatmirror:images.service, chatmirror:images.grafana: set it (repo@sha256:…) or build the images so that images/digests.json exists (it does not)',
    );
  });
});

describe('benchmark units', () => {
  const bench = parseStackConfig({
    'chatmirror:profile': 'staging',
    'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
    'chatmirror:monitoring': { enabled: false },
  }).benchmarks;
  const options = {
    stack: 'prod',
    bench: { ...bench, schedule: '*-*-* 03:30:00', concurrency: [1, 4, 8], historyDays: 365 },
    image: DIGESTS.service,
    network: 'chatmirror-prod',
    endpoint: 'https://chatmirror:8443',
    user: '10001:10001',
    caFile: '/srv/chatmirror/prod/bench/ca.crt',
    tokenFile: '/srv/chatmirror/prod/bench/bench-token',
    historyDir: '/srv/chatmirror/prod/bench-history',
    textfileDir: '/srv/chatmirror/prod/textfile',
    modelId: 'chat-1b',
  };

  it('run `chatmirror bench` from the pinned image, hardened, without the Docker socket', () => {
    const unit = renderBenchmarkService(options);
    expect(unit).toContain(`${DIGESTS.service} \\\n    bench`);
    expect(unit).toContain('--read-only');
    expect(unit).toContain('--cap-drop ALL --security-opt no-new-privileges:true');
    expect(unit).toContain('--concurrency 1,4,8');
    expect(unit).not.toContain('docker.sock');
  });

  it('publish results atomically and prune the JSON history', () => {
    const unit = renderBenchmarkService(options);
    expect(unit).toContain('--textfile /textfile/.chatmirror_bench.prom.tmp');
    expect(unit).toContain(
      "ExecStartPost=/bin/mv -f '/srv/chatmirror/prod/textfile/.chatmirror_bench.prom.tmp' '/srv/chatmirror/prod/textfile/chatmirror_bench.prom'",
    );
    expect(unit).toContain("-name '*.json' -type f -mtime +365 -delete");
  });

  it('schedule with a persistent, jittered timer', () => {
    expect(renderBenchmarkTimer(options)).toMatch(
      /OnCalendar=\*-\*-\* 03:30:00\nRandomizedDelaySec=600\nPersistent=true\nUnit=chatmirror-bench-prod.service/,
    );
  });
});

describe('ssh', () => {
  const target = {
    host: '203.0.113.10',
    port: 2222,
    user: 'deploy',
    hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKc5gD/0PazKVCJjYNmar+p1i0ua2DwPthdX6qTphvBU',
    privateKeyPath: '/home/op/.ssh/k',
  };

  it('accept only the pinned host key', () => {
    const opts = sshOptions(target);
    expect(opts).toContain('StrictHostKeyChecking=yes');
    expect(opts).toContain('UserKnownHostsFile=/dev/null');
    expect(opts).toContain(`KnownHostsCommand=/bin/echo [203.0.113.10]:2222 ${target.hostKey}`);
    expect(opts.join(' ')).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
    expect(knownHostsLine({ ...target, port: 22 })).toBe(`203.0.113.10 ${target.hostKey}`);
    expect(sshCommandLine(target)).toMatch(
      /^ssh '-o' 'StrictHostKeyChecking=yes' .* 'deploy@203\.0\.113\.10' 'sh -s'$/,
    );
  });
});

describe('metric names in PromQL', () => {
  it('are found outside functions, label matchers, grouping and durations', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, model) (rate(chatmirror_time_to_first_token_seconds_bucket{job="chatmirror"}[5m]))) > 3',
      ),
    ).toEqual(['chatmirror_time_to_first_token_seconds_bucket']);
    expect(
      metricNamesIn('a_total / clamp_min(b_total, 1e-9) < 0.85 * avg_over_time(c[7d] offset 1d)'),
    ).toEqual(['a_total', 'b_total', 'c']);
  });
});
