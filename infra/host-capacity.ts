/**
 * HostCapacity: does the target host have what the stack needs? Local facts come from systeminformation; a
 * remote host's from a probe over SSH (pinned host key) run as an invoke, so both fail the PREVIEW with a
 * need-vs-have table — or only warn, when capacity.allowUndersized says so.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { request } from 'node:http';
import * as command from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import si from 'systeminformation';
import {
  type CapacityInputs,
  type CapacityReport,
  evaluateCapacity,
  type HostFacts,
  type StackHoldings,
  type StackScope,
} from './render/capacity.js';
import type { DaemonFacts } from './render/daemon.js';
import { hostFactsScript, type SshTarget, sshCommandLine } from './render/ssh.js';

export interface HostCapacityArgs {
  inputs: CapacityInputs;
  /** The target's facts: collectLocalFacts() for this machine, collectRemoteFacts() over SSH. */
  facts: HostFacts;
  allowUndersized: boolean;
}

/**
 * Facts are gathered before the program plans anything (both collectors run during preview), so the check is
 * plain code: an undersized host stops the program with the table before any resource exists.
 */
export class HostCapacity extends pulumi.ComponentResource {
  readonly report: CapacityReport;
  readonly facts: HostFacts;

  constructor(name: string, args: HostCapacityArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:HostCapacity', name, {}, opts);
    if (args.inputs.modelBytes < 0)
      throw new Error(`HostCapacity ${name}: args.inputs.modelBytes must be ≥ 0`);
    if (!(args.facts.cpuCores > 0)) throw new Error(`HostCapacity ${name}: args.facts.cpuCores must be > 0`);
    this.facts = args.facts;
    this.report = evaluateCapacity(args.inputs, args.facts);
    if (!this.report.ok) {
      const message = `host is undersized for profile ${args.inputs.profile}:\n${this.report.table}`;
      if (!args.allowUndersized)
        throw new Error(
          `${message}\nResize the host, lower the stack's limits, or set capacity.allowUndersized.`,
        );
      pulumi.log.warn(`${message}\n(capacity.allowUndersized is true: going on)`, this);
    }
    this.registerOutputs({ report: this.report.table, ok: this.report.ok });
  }
}

/**
 * A remote host's facts: the probe script over SSH with the pinned host key, as an invoke of @pulumi/command's
 * local.run (not a resource), so it runs during preview as well as during up.
 */
export async function collectRemoteFacts(
  ssh: SshTarget,
  dockerDataPath: string,
  stack?: StackScope,
): Promise<HostFacts> {
  const result = await command.local.run({
    command: sshCommandLine(ssh),
    stdin: hostFactsScript(dockerDataPath, stack),
  });
  return parseRemoteFacts(result.stdout);
}

/** The probe prints one JSON line; `gpus` is `|`-separated. */
export function parseRemoteFacts(stdout: string): HostFacts {
  const line = stdout.trim().split('\n').pop() ?? '';
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`host facts probe printed no JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const num = (key: string) => {
    const n = Number(raw[key]);
    if (!Number.isFinite(n))
      throw new Error(`host facts probe: ${key} is not a number (${JSON.stringify(raw[key])})`);
    return n;
  };
  const gpus = String(raw.gpus ?? '');
  const dockerVersion = String(raw.dockerVersion ?? '');
  const dockerApiVersion = String(raw.dockerApiVersion ?? '');
  const nofile = Number(raw.dockerNofileHard);
  return {
    cpuCores: num('cpuCores'),
    memoryBytes: num('memoryBytes'),
    diskFreeBytes: num('diskFreeBytes'),
    diskPath: String(raw.diskPath ?? ''),
    dockerVersion: dockerVersion === '' ? undefined : dockerVersion,
    dockerApiVersion: dockerApiVersion === '' ? undefined : dockerApiVersion,
    dockerNofileHard: Number.isInteger(nofile) && nofile > 0 ? nofile : undefined,
    gpus: gpus === '' ? [] : gpus.split('|'),
    ...(raw.held === undefined || raw.held === null ? {} : { held: parseHoldings(raw.held) }),
  };
}

/** The probe's `held` (ssh.ts heldScript): anything malformed is refused, never half-read. */
function parseHoldings(raw: unknown): StackHoldings {
  const bad = (what: string) =>
    new Error(`host facts probe: held.${what} is malformed (${JSON.stringify(raw)})`);
  if (typeof raw !== 'object' || raw === null) throw bad('');
  const r = raw as Record<string, unknown>;
  const count = (key: string) => {
    const n = Number(r[key]);
    if (!Number.isFinite(n) || n < 0) throw bad(key);
    return n;
  };
  if (!Array.isArray(r.images)) throw bad('images');
  const images = r.images.map((image: unknown) => {
    const i = image as { digests?: unknown; bytes?: unknown } | null;
    if (i === null || !Array.isArray(i.digests) || !Number.isFinite(Number(i.bytes))) throw bad('images');
    return { digests: i.digests.map(String), bytes: Number(i.bytes) };
  });
  return { images, volumesBytes: count('volumesBytes'), dataDirBytes: count('dataDirBytes') };
}

/** This machine's facts: cores, memory, free space on the filesystem holding `dockerDataPath`, Docker, GPUs. */
export async function collectLocalFacts(dockerDataPath: string, stack?: StackScope): Promise<HostFacts> {
  const [cpu, mem, disks, dockerInfo, graphics, daemon, df] = await Promise.all([
    si.cpu(),
    si.mem(),
    si.fsSize(),
    si.dockerInfo().catch(() => undefined),
    si.graphics().catch(() => ({ controllers: [] })),
    localDaemonFacts(),
    stack === undefined ? undefined : dockerGet('/system/df'),
  ]);
  const dataPath = dockerInfo?.dockerRootDir || dockerDataPath;
  // The filesystem holding the path: the longest mount point that prefixes it.
  const disk = disks
    .filter(
      (d) => dataPath === d.mount || dataPath.startsWith(d.mount.endsWith('/') ? d.mount : `${d.mount}/`),
    )
    .sort((a, b) => b.mount.length - a.mount.length)[0];
  return {
    cpuCores: cpu.cores,
    memoryBytes: mem.total,
    diskFreeBytes: disk?.available ?? 0,
    diskPath: dataPath,
    dockerVersion: dockerInfo?.serverVersion || undefined,
    ...daemon,
    ...(stack === undefined ? {} : { held: await localHoldings(df, stack, dataPath) }),
    gpus: graphics.controllers
      .filter((c) => /nvidia|amd|radeon|intel arc/i.test(`${c.vendor} ${c.model}`))
      .map((c) => `${c.vendor} ${c.model}`.trim()),
  };
}

/**
 * The local daemon's Engine API version (GET /version on its socket) and its process's hard nofile limit
 * (/proc/<pid>/limits, the pid from /proc's process names): what containers may be given. Unknown stays
 * undefined, and the program then asks for nothing that needs it.
 */
async function localDaemonFacts(): Promise<DaemonFacts> {
  const version = (await dockerGet('/version')) as { ApiVersion?: string } | undefined;
  const apiVersion =
    typeof version?.ApiVersion === 'string' && version.ApiVersion !== '' ? version.ApiVersion : undefined;
  const pid = await dockerdPid();
  return {
    dockerApiVersion: apiVersion,
    dockerNofileHard: pid === undefined ? undefined : await nofileHard(pid),
  };
}

async function dockerdPid(): Promise<string | undefined> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return undefined;
  }
  for (const pid of entries.filter((e) => /^[0-9]+$/.test(e))) {
    try {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() === 'dockerd') return pid;
    } catch {}
  }
  return undefined;
}

async function nofileHard(pid: string): Promise<number | undefined> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => '');
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const hard = Number(line?.trim().split(/\s+/)[4]);
  return Number.isInteger(hard) && hard > 0 ? hard : undefined;
}

/** GET on the local Engine API socket (DOCKER_HOST unix://, else /var/run/docker.sock); undefined on any failure. */
function dockerGet(path: string): Promise<unknown> {
  const socketPath = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');
  return new Promise((done) => {
    const req = request({ socketPath, path, timeout: 60_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      res.on('end', () => {
        try {
          done(res.statusCode === 200 ? JSON.parse(body) : undefined);
        } catch {
          done(undefined);
        }
      });
    });
    req.on('error', () => done(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

interface SystemDf {
  Images?: { RepoDigests?: string[] | null; Size?: number }[] | null;
  Volumes?: { Labels?: Record<string, string> | null; UsageData?: { Size?: number } | null }[] | null;
}

/**
 * What the stack holds on this machine: images and the stack's labelled volumes from the Engine API's
 * GET /system/df (exact bytes; a volume whose size Docker did not compute, -1, counts 0), and the data dir's file
 * bytes when it is on the filesystem holding `dataPath`.
 */
export async function localHoldings(
  df: unknown,
  stack: StackScope,
  dataPath: string,
): Promise<StackHoldings> {
  const d = (df ?? {}) as SystemDf;
  const images = (d.Images ?? []).map((image) => ({
    digests: (image.RepoDigests ?? []).filter((ref) => ref.includes('@sha256:')),
    bytes: Math.max(0, image.Size ?? 0),
  }));
  const volumesBytes = (d.Volumes ?? [])
    .filter((volume) => volume.Labels?.['chatmirror.stack'] === stack.name)
    .reduce((sum, volume) => sum + Math.max(0, volume.UsageData?.Size ?? 0), 0);
  const [dirDev, dataDev] = await Promise.all([
    stat(stack.dataDir).then(
      (s) => s.dev,
      () => undefined,
    ),
    stat(dataPath).then(
      (s) => s.dev,
      () => undefined,
    ),
  ]);
  const dataDirBytes = dirDev !== undefined && dirDev === dataDev ? await treeBytes(stack.dataDir) : 0;
  return { images, volumesBytes, dataDirBytes };
}

/** Bytes of the regular files under `dir` (`du -sb`); what cannot be read counts 0. */
async function treeBytes(dir: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) total += await treeBytes(path);
    else if (entry.isFile())
      total += await lstat(path).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}
