/**
 * The container settings every container of this program shares: read-only root filesystem, a non-root user,
 * every capability dropped, no privilege escalation, memory (swap off), CPU and process limits, rotated logs.
 * One function, so no container can quietly miss one of them (and the policy pack can check for exactly these).
 */
import type * as docker from '@pulumi/docker';

export interface HardeningOptions {
  /** uid:gid, never 0. */
  user: string;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  logMaxSizeMb: number;
  logMaxFiles: number;
  /**
   * RLIMIT_NOFILE to set; undefined: none is set and the container inherits the daemon's limit. Never above the
   * daemon's own hard limit (render/daemon.ts derives it from the target's facts).
   */
  nofile?: number | undefined;
  /** tmpfs mounts (the only writable paths besides volumes), path → size in MiB. */
  tmpfs?: Record<string, number>;
}

export function hardenedContainer(o: HardeningOptions): Partial<docker.ContainerArgs> {
  if (!/^[0-9]+:[0-9]+$/.test(o.user) || o.user.startsWith('0:'))
    throw new Error(`hardenedContainer: user must be a non-root uid:gid, got ${o.user}`);
  const [uid, gid] = o.user.split(':');
  return {
    user: o.user,
    readOnly: true,
    capabilities: { drops: ['ALL'] },
    securityOpts: ['no-new-privileges:true'],
    memory: o.memoryMb,
    memorySwap: o.memoryMb, // equal to memory: no swap, so a leak ends in an OOM kill, not a crawl
    cpus: String(o.cpus),
    // The provider has no pids_limit. RLIMIT_NPROC is the nearest bound: it counts every process and thread of the
    // container's uid, which no host user shares (the replicas of one service do share it).
    ulimits: [
      { name: 'nproc', soft: o.pidsLimit, hard: o.pidsLimit },
      ...(o.nofile === undefined ? [] : [{ name: 'nofile', soft: o.nofile, hard: o.nofile }]),
    ],
    logDriver: 'json-file',
    logOpts: { 'max-size': `${o.logMaxSizeMb}m`, 'max-file': String(o.logMaxFiles) },
    // Owned by the container's user: a tmpfs takes the mode of the image's directory and belongs to root, so a
    // data directory like Redis's /data (0750 root) would be unusable (the deploy proof hit "Permission denied").
    tmpfs: Object.fromEntries(
      Object.entries(o.tmpfs ?? { '/tmp': 64 }).map(([path, mb]) => [
        path,
        `rw,noexec,nosuid,nodev,size=${mb}m,uid=${uid},gid=${gid}`,
      ]),
    ),
    init: true,
  };
}
