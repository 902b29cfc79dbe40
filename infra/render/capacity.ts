/**
 * What a stack needs from its host, derived from the model's size and the stack's profile and settings, and the
 * need-vs-have table a preview prints (and fails on, unless capacity.allowUndersized).
 */
import type { Profile } from '../config.js';
import { ALERTMANAGER_MEMORY_MB } from './alertmanager.js';
import { compareApiVersions, type DaemonFacts, MIN_DOCKER_API } from './daemon.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
export const GB = 1e9;

/** The seed's guidance: what a profile needs at the least, whatever the model. */
export const PROFILE_FLOORS: Record<
  Profile,
  { memoryBytes: number; cpuCores: number; diskFreeBytes: number }
> = {
  dev: { memoryBytes: 2 * GiB, cpuCores: 2, diskFreeBytes: 10 * GB },
  staging: { memoryBytes: 8 * GiB, cpuCores: 4, diskFreeBytes: 30 * GB },
  prod: { memoryBytes: 16 * GiB, cpuCores: 4, diskFreeBytes: 50 * GB },
};

const OS_RESERVE_BYTES = 1 * GiB; // kernel, page cache for the model files, sshd, dockerd
const IMAGES_BYTES = 5 * GB; // service + prometheus + node-exporter + alertmanager + grafana, with some slack
const NODE_EXPORTER_BYTES = 128 * MiB;
const ALERTMANAGER_BYTES = ALERTMANAGER_MEMORY_MB * MiB;
/** onnxruntime holds the weights once plus arena buffers and the KV cache; 1.5× the files is a measured floor. */
const MODEL_MEMORY_FACTOR = 1.5;
const RUNTIME_OVERHEAD_BYTES = 512 * MiB; // Node, tokenizer, Fastify, per replica

export interface HostFacts extends DaemonFacts {
  cpuCores: number;
  memoryBytes: number;
  /** Free space where Docker keeps its data. */
  diskFreeBytes: number;
  diskPath: string;
  /** `docker version` server version; undefined when Docker is not reachable. */
  dockerVersion: string | undefined;
  gpus: string[];
  /** What this stack already occupies on that filesystem (a second `up` must not count it against itself). */
  held?: StackHoldings | undefined;
}

/** Disk the stack already holds on the target, as the collectors read it (a plain object, so mocks can pass it). */
export interface StackHoldings {
  /** Images present on the target: each one's repo digests (`repo@sha256:…`) and size in bytes. */
  images: { digests: string[]; bytes: number }[];
  /** Bytes in the volumes labelled `chatmirror.stack=<stack>`. */
  volumesBytes: number;
  /** Bytes under the stack's data dir when it lies on the filesystem measured, else 0. */
  dataDirBytes: number;
}

/** Where the collectors look for what a stack holds. */
export interface StackScope {
  name: string;
  /** The stack's data dir on the target (target.dataDir, resolved). */
  dataDir: string;
}

export interface CapacityInputs {
  profile: Profile;
  modelBytes: number;
  replicas: number;
  replicaMemoryMb: number;
  replicaCpus: number;
  logBytesPerReplica: number;
  monitoring?: { prometheusMemoryMb: number; grafanaMemoryMb: number; retentionSizeGb: number };
  benchmarkMemoryMb?: number;
  /**
   * Replicas that exist beside the old ones while a change rolls (create-before-delete: with more than one
   * replica, every replica has its successor running before the old ones go).
   */
  surgeReplicas?: number;
  /** The balancer and the quota store in front of several replicas. */
  sidecarMemoryMb?: number;
  /** `repo@sha256:…` of every image the stack runs: those already on the host count as held. */
  pinnedImages?: string[];
}

/**
 * Bytes the stack already holds on the disk measured: its pinned images already pulled (matched by digest, at
 * most the estimate the need counts for images, since images share layers), its labelled volumes and its data dir.
 */
export function heldBytes(
  inputs: Pick<CapacityInputs, 'pinnedImages'>,
  held: StackHoldings | undefined,
): { images: number; volumes: number; dataDir: number; total: number } {
  if (held === undefined) return { images: 0, volumes: 0, dataDir: 0, total: 0 };
  const digestOf = (ref: string) => ref.slice(ref.lastIndexOf('@') + 1);
  const pinned = new Set((inputs.pinnedImages ?? []).map(digestOf));
  const present = held.images.filter((image) => image.digests.some((ref) => pinned.has(digestOf(ref))));
  const images = Math.min(
    IMAGES_BYTES,
    present.reduce((sum, image) => sum + Math.max(0, image.bytes), 0),
  );
  const volumes = Math.max(0, held.volumesBytes);
  const dataDir = Math.max(0, held.dataDirBytes);
  return { images, volumes, dataDir, total: images + volumes + dataDir };
}

export interface Requirement {
  resource: 'memory' | 'cpu cores' | 'disk free' | 'docker' | 'model fits replica' | 'gpu';
  need: string;
  have: string;
  ok: boolean;
  why: string;
}

export interface CapacityReport {
  ok: boolean;
  rows: Requirement[];
  table: string;
}

export interface CapacityNeeds {
  memoryBytes: number;
  cpuCores: number;
  diskFreeBytes: number;
  /** Memory one replica needs for the model; compared with its limit, not with the host. */
  replicaModelBytes: number;
  why: { memory: string; cpu: string; disk: string };
}

export function capacityNeeds(inputs: CapacityInputs): CapacityNeeds {
  const floor = PROFILE_FLOORS[inputs.profile];
  const monitoringMemory =
    inputs.monitoring === undefined
      ? 0
      : (inputs.monitoring.prometheusMemoryMb + inputs.monitoring.grafanaMemoryMb) * MiB +
        NODE_EXPORTER_BYTES +
        ALERTMANAGER_BYTES;
  const surge = inputs.surgeReplicas ?? 0;
  const derivedMemory =
    (inputs.replicas + surge) * inputs.replicaMemoryMb * MiB +
    (inputs.sidecarMemoryMb ?? 0) * MiB +
    monitoringMemory +
    (inputs.benchmarkMemoryMb ?? 0) * MiB +
    OS_RESERVE_BYTES;
  const derivedCores =
    Math.ceil(inputs.replicas * inputs.replicaCpus) + (inputs.monitoring === undefined ? 0 : 1);
  const derivedDisk =
    inputs.modelBytes +
    IMAGES_BYTES +
    (inputs.monitoring?.retentionSizeGb ?? 0) * GB +
    inputs.replicas * inputs.logBytesPerReplica +
    2 * GB;
  return {
    memoryBytes: Math.max(floor.memoryBytes, derivedMemory),
    cpuCores: Math.max(floor.cpuCores, derivedCores),
    diskFreeBytes: Math.max(floor.diskFreeBytes, derivedDisk),
    replicaModelBytes: Math.ceil(inputs.modelBytes * MODEL_MEMORY_FACTOR + RUNTIME_OVERHEAD_BYTES),
    why: {
      memory: `max(${inputs.profile} floor ${gib(floor.memoryBytes)}, ${inputs.replicas}${surge > 0 ? ` (+${surge} while rolling)` : ''} × ${inputs.replicaMemoryMb} MiB limits${inputs.sidecarMemoryMb ? ' + balancer and quota store' : ''} + monitoring + OS)`,
      cpu: `max(${inputs.profile} floor ${floor.cpuCores}, ${inputs.replicas} × ${inputs.replicaCpus} cpus${inputs.monitoring ? ' + 1 for monitoring' : ''})`,
      disk: `max(${inputs.profile} floor ${bytes(floor.diskFreeBytes)}, model + images + Prometheus retention + logs)`,
    },
  };
}

export function evaluateCapacity(inputs: CapacityInputs, facts: HostFacts): CapacityReport {
  const needs = capacityNeeds(inputs);
  // "have" is free space plus what this stack already holds there: after the first `up` its images, volumes and
  // files fill part of the disk the need counts, and a second `up` must not fail on its own footprint.
  const held = heldBytes(inputs, facts.held);
  const rows: Requirement[] = [
    {
      resource: 'memory',
      need: gib(needs.memoryBytes),
      have: gib(facts.memoryBytes),
      ok: facts.memoryBytes >= needs.memoryBytes,
      why: needs.why.memory,
    },
    {
      resource: 'cpu cores',
      need: String(needs.cpuCores),
      have: String(facts.cpuCores),
      ok: facts.cpuCores >= needs.cpuCores,
      why: needs.why.cpu,
    },
    {
      resource: 'disk free',
      need: bytes(needs.diskFreeBytes),
      have:
        held.total === 0
          ? `${bytes(facts.diskFreeBytes)} (${facts.diskPath})`
          : `${bytes(facts.diskFreeBytes + held.total)} (${facts.diskPath}: ${bytes(facts.diskFreeBytes)} free + ${bytes(held.total)} held by the stack)`,
      ok: facts.diskFreeBytes + held.total >= needs.diskFreeBytes,
      why:
        held.total === 0
          ? needs.why.disk
          : `${needs.why.disk}; held: images ${bytes(held.images)}, volumes ${bytes(held.volumes)}, data dir ${bytes(held.dataDir)}`,
    },
    {
      resource: 'docker',
      need: `Engine API ≥ ${MIN_DOCKER_API}`,
      have:
        facts.dockerApiVersion === undefined
          ? (facts.dockerVersion ?? 'not reachable')
          : `${facts.dockerVersion ?? '?'} (API ${facts.dockerApiVersion})`,
      ok:
        facts.dockerApiVersion !== undefined &&
        compareApiVersions(facts.dockerApiVersion, MIN_DOCKER_API) >= 0,
      why: 'start or upgrade dockerd (the program declares only what this API version grants)',
    },
    {
      resource: 'model fits replica',
      need: gib(needs.replicaModelBytes),
      have: `${gib(inputs.replicaMemoryMb * MiB)} limit`,
      ok: inputs.replicaMemoryMb * MiB >= needs.replicaModelBytes,
      why: `model files ${bytes(inputs.modelBytes)} × ${MODEL_MEMORY_FACTOR} + runtime; raise serving.memoryMb`,
    },
    {
      resource: 'gpu',
      need: 'none (CPU inference)',
      have: facts.gpus.length === 0 ? 'none' : facts.gpus.join(', '),
      ok: true,
      why: 'informational',
    },
  ];
  const ok = rows.every((row) => row.ok);
  return { ok, rows, table: renderCapacityTable(rows) };
}

/** A fixed-width table that reads the same in a terminal, a preview diagnostic and a stack output. */
export function renderCapacityTable(rows: Requirement[]): string {
  const header = ['resource', 'need', 'have', '', 'why'];
  const body = rows.map((r) => [r.resource, r.need, r.have, r.ok ? 'ok' : 'SHORT', r.why]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((cells) => (cells[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Memory in GiB (how RAM is sold and how `free -g` counts). */
export function gib(n: number): string {
  return `${(n / GiB).toFixed(1)} GiB`;
}

/** Disk in decimal GB (how disks are sold and how `df -H` counts). */
export function bytes(n: number): string {
  if (n >= GB) return `${(n / GB).toFixed(1)} GB`;
  if (n >= MiB) return `${(n / MiB).toFixed(0)} MiB`;
  return `${n} B`;
}
