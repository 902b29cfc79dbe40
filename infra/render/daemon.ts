/**
 * What the target's Docker daemon grants, decided from facts read off it (never assumed): which container
 * settings the program may declare. A real `pulumi up` against Debian's docker.io 20.10 (Engine API 1.41) failed
 * on `healthcheck.startInterval` ("requires API version 1.44") and on a nofile ulimit above the daemon's own hard
 * limit ("error setting rlimit type 7: operation not permitted"); both are now derived here.
 */

/** The oldest Engine API this program is tested against (Debian bookworm's docker.io 20.10.24). */
export const MIN_DOCKER_API = '1.41';
/** Healthcheck StartInterval arrived with Engine API 1.44 (Docker 25). */
export const HEALTH_START_INTERVAL_API = '1.44';
/** What a server wants for sockets and files when the daemon allows it (Node's default soft limit is far lower). */
export const WANTED_NOFILE = 65_536;

export interface DaemonFacts {
  /** `docker version` Server.APIVersion, e.g. "1.41"; undefined when the daemon did not answer. */
  dockerApiVersion?: string | undefined;
  /** The daemon process's hard RLIMIT_NOFILE: a container cannot be given more. */
  dockerNofileHard?: number | undefined;
}

export interface ContainerFeatures {
  /** Declare healthcheck.startInterval (faster first readiness) only where the API knows it. */
  healthStartInterval: boolean;
  /** The nofile ulimit to ask for; undefined: ask for none, the container inherits the daemon's default. */
  nofile: number | undefined;
}

export function containerFeatures(facts: DaemonFacts): ContainerFeatures {
  const api = facts.dockerApiVersion;
  return {
    healthStartInterval: api !== undefined && compareApiVersions(api, HEALTH_START_INTERVAL_API) >= 0,
    nofile:
      facts.dockerNofileHard === undefined || !(facts.dockerNofileHard > 0)
        ? undefined
        : Math.min(WANTED_NOFILE, facts.dockerNofileHard),
  };
}

/** Orders "1.41" and "1.44" numerically per component (so 1.100 > 1.44). */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}
