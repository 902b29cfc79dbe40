/**
 * A second `pulumi up` counts what the first one put on the disk as the stack's own: "have" is free space plus the
 * stack's pinned images, labelled volumes and data dir. The collectors are run for real against this machine's
 * Docker where it answers (one throwaway volume, removed afterwards).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectLocalFacts, parseRemoteFacts } from '../../infra/host-capacity.js';
import {
  type CapacityInputs,
  evaluateCapacity,
  GB,
  type HostFacts,
  type StackHoldings,
} from '../../infra/render/capacity.js';
import { hostFactsScript } from '../../infra/render/ssh.js';
import { DIGESTS, stackPlanOptions } from './fixtures.js';
import { DEFAULT_FACTS, planStack } from './plan.js';

const PINNED = [DIGESTS.service, DIGESTS.prometheus, DIGESTS.nodeExporter, DIGESTS.grafana];
const PROD: CapacityInputs = {
  profile: 'prod',
  modelBytes: 818_315_260,
  replicas: 2,
  replicaMemoryMb: 6144,
  replicaCpus: 3,
  logBytesPerReplica: 500 * 1024 ** 2,
  monitoring: { prometheusMemoryMb: 2048, grafanaMemoryMb: 512, retentionSizeGb: 40 },
  pinnedImages: PINNED,
};
const disk = (report: ReturnType<typeof evaluateCapacity>) =>
  report.rows.find((r) => r.resource === 'disk free')!;

/** The host after the first `up`: its images pulled (Docker names them without docker.io/) and its TSDB grown. */
function afterFirstUp(free: number): HostFacts {
  const held: StackHoldings = {
    images: [
      { digests: [DIGESTS.service], bytes: 0.3 * GB },
      { digests: [DIGESTS.prometheus.replace('docker.io/', '')], bytes: 0.3 * GB },
      { digests: [DIGESTS.nodeExporter.replace('docker.io/', '')], bytes: 0.03 * GB },
      { digests: [DIGESTS.grafana.replace('docker.io/', '')], bytes: 0.7 * GB },
      { digests: [`docker.io/library/postgres@sha256:${'e'.repeat(64)}`], bytes: 4 * GB }, // not ours
      { digests: [], bytes: 1 * GB },
    ],
    volumesBytes: 30 * GB,
    dataDirBytes: 0.2 * GB,
  };
  return { ...DEFAULT_FACTS, cpuCores: 16, memoryBytes: 64 * 1024 ** 3, diskFreeBytes: free, held };
}

describe('capacity on a second up', () => {
  it('credits the stack its own images, volumes and data dir, and nothing else', () => {
    const first = evaluateCapacity(PROD, {
      ...DEFAULT_FACTS,
      cpuCores: 16,
      memoryBytes: 64 * 1024 ** 3,
      diskFreeBytes: 52 * GB,
    });
    expect(disk(first).ok).toBe(true);
    // The first up took 1.33 GB of images, 30 GB of TSDB and 0.2 GB of files: 20.47 GB are free now.
    const second = evaluateCapacity(PROD, afterFirstUp(52 * GB - 31.53 * GB));
    expect(disk(second)).toMatchObject({
      ok: true,
      have: '52.0 GB (/var/lib/docker: 20.5 GB free + 31.5 GB held by the stack)',
    });
    expect(disk(second).why).toContain('held: images 1.3 GB, volumes 30.0 GB, data dir 191 MiB');
    // Another stack's image (postgres) is not credited: one byte less free and it is short again.
    expect(disk(evaluateCapacity(PROD, afterFirstUp(50 * GB - 31.53 * GB - 1))).ok).toBe(false);
    // Without the pinned refs only volumes and the data dir count.
    const { pinnedImages: _, ...unpinned } = PROD;
    expect(disk(evaluateCapacity(unpinned, afterFirstUp(20.47 * GB))).have).toContain('30.2 GB held');
  });

  it('the prod program passes its own second up (the pinned refs reach the check)', async () => {
    const options = await stackPlanOptions('prod');
    const plan = await planStack({ ...options, facts: afterFirstUp(20.47 * GB) });
    expect(String(plan.outputs.capacityReport)).toMatch(
      /disk free +50\.0 GB +52\.0 GB .*held by the stack\) +ok/,
    );
  });
});

const dockerOk = spawnSync('docker', ['version', '--format', '{{.Server.APIVersion}}']).status === 0;

// CI runs this file again after images/build.sh has started dockerd, with CHATMIRROR_IMAGE_TESTS set: then no skip.
describe.skipIf(!dockerOk && !process.env.CHATMIRROR_IMAGE_TESTS)("this machine's Docker", () => {
  const stack = `helper-test-${randomBytes(4).toString('hex')}`;
  const volume = `chatmirror-${stack}-data`;
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  // Set up in beforeAll, not while collecting: vitest collects a skipped suite too.
  let volumeBytes = 0;
  let root = '';
  let dataDir = '';
  let withDigest: { digests: string[]; bytes: number } | undefined;
  beforeAll(() => {
    docker('volume', 'create', '--label', `chatmirror.stack=${stack}`, volume);
    const mountpoint = docker('volume', 'inspect', '--format', '{{.Mountpoint}}', volume);
    try {
      accessSync(mountpoint, constants.W_OK);
      writeFileSync(join(mountpoint, 'blob'), randomBytes(1_500_000));
      volumeBytes = 1_500_000;
    } catch {
      // Not root: the volume stays empty and counts 0.
    }
    root = mkdtempSync(join(tmpdir(), 'chatmirror-held-'));
    dataDir = join(root, 'data');
    mkdirSync(join(dataDir, 'bench-history'), { recursive: true });
    writeFileSync(join(dataDir, 'bench-history', 'run.json'), Buffer.alloc(1_000_000));
    withDigest = JSON.parse(
      `[${docker(
        'image',
        'inspect',
        '--format',
        '{"digests":{{json .RepoDigests}},"bytes":{{.Size}}}',
        ...docker('image', 'ls', '-q', '--no-trunc').split('\n').filter(Boolean),
      )
        .split('\n')
        .join(',')}]`,
    ).find((i: { digests: string[] }) => i.digests.length > 0) as
      | { digests: string[]; bytes: number }
      | undefined;
  });
  afterAll(() => {
    docker('volume', 'rm', volume);
  });

  it('the local collector reads the stack volume, images and data dir off the Engine API and the disk', async () => {
    const dataPath = docker('info', '--format', '{{.DockerRootDir}}');
    const facts = await collectLocalFacts(dataPath, { name: stack, dataDir });
    expect(facts.held).toBeDefined();
    expect(facts.held!.volumesBytes).toBeGreaterThanOrEqual(volumeBytes);
    expect(facts.held!.volumesBytes).toBeLessThan(volumeBytes + 65_536);
    const sameFs = statSync(dataDir).dev === statSync(facts.diskPath).dev;
    expect(facts.held!.dataDirBytes).toBe(sameFs ? 1_000_000 : 0);
    if (withDigest !== undefined)
      expect(facts.held!.images).toContainEqual({ digests: withDigest.digests, bytes: withDigest.bytes });
    const report = evaluateCapacity(
      { ...PROD, pinnedImages: withDigest === undefined ? [] : [withDigest.digests[0]!] },
      facts,
    );
    const credited = facts.held!.volumesBytes + facts.held!.dataDirBytes + (withDigest?.bytes ?? 0);
    if (credited > 0) expect(disk(report).have).toMatch(/free \+ .* held by the stack\)$/);
  });

  it('the remote probe script reports the same, in the shape the mocks pass', () => {
    // The data dir is measured on the filesystem of the path given for Docker's data: here the temp dir's own.
    const out = execFileSync('sh', ['-s'], {
      input: hostFactsScript(root, { name: stack, dataDir }),
    }).toString();
    const facts = parseRemoteFacts(out);
    // docker system df prints volume sizes with 4 significant digits.
    expect(Math.abs(facts.held!.volumesBytes - volumeBytes)).toBeLessThanOrEqual(
      Math.max(volumeBytes * 0.001, 65_536),
    );
    // du counts the two directories' own entries too.
    expect(facts.held!.dataDirBytes).toBeGreaterThanOrEqual(1_000_000);
    expect(facts.held!.dataDirBytes).toBeLessThan(1_000_000 + 65_536);
    if (withDigest !== undefined)
      expect(facts.held!.images).toContainEqual({ digests: withDigest.digests, bytes: withDigest.bytes });
    expect(() => parseRemoteFacts(out.replace('"volumesBytes":', '"volumesBytes":"x",'))).toThrow(
      /held.volumesBytes is malformed|printed no JSON/,
    );
  });
});
