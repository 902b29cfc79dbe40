/**
 * The Docker Engine API over the daemon's unix socket, pinned to the oldest version the program supports
 * (infra/render/daemon.ts MIN_DOCKER_API): a request the daemon would refuse from an old provider fails here too.
 * Only the handful of endpoints the deploy proof uses; bodies are the Engine API's own JSON.
 */
import { request } from 'node:http';
import { MIN_DOCKER_API } from '../../infra/render/daemon.js';

export const SOCKET = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');

export class DockerApiError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    message: string,
  ) {
    super(`${method} ${path}: ${status} ${message}`);
  }
}

export interface DockerResponse {
  status: number;
  body: Buffer;
}

/** One API call; a status ≥ 400 throws with the daemon's message, unless `allow` lists it. */
export async function dockerApi(
  method: string,
  path: string,
  body?: unknown,
  options: { allow?: number[]; timeoutMs?: number } = {},
): Promise<DockerResponse> {
  const fullPath = `/v${MIN_DOCKER_API}${path}`;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const response = await new Promise<DockerResponse>((done, fail) => {
    const req = request(
      {
        socketPath: SOCKET,
        method,
        path: fullPath,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: options.timeoutMs ?? 600_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', fail);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', fail);
    req.end(payload);
  });
  if (response.status >= 400 && !(options.allow ?? []).includes(response.status)) {
    let message = response.body.toString('utf8');
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {}
    throw new DockerApiError(response.status, method, path, message.trim());
  }
  return response;
}

export async function dockerJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const { body: raw } = await dockerApi(method, path, body);
  return JSON.parse(raw.toString('utf8')) as T;
}

/** Is a daemon answering on the socket? */
export async function dockerReachable(): Promise<boolean> {
  try {
    return (await dockerApi('GET', '/_ping', undefined, { timeoutMs: 5000 })).status === 200;
  } catch {
    return false;
  }
}

/**
 * A container's output as text: the API multiplexes stdout and stderr into 8-byte-headed frames when the
 * container has no TTY; the headers are stripped here.
 */
export async function containerLogs(idOrName: string, tail = 200): Promise<string> {
  const { body } = await dockerApi(
    'GET',
    `/containers/${encodeURIComponent(idOrName)}/logs?stdout=1&stderr=1&tail=${tail}`,
    undefined,
    { allow: [404] },
  );
  const parts: string[] = [];
  let offset = 0;
  while (offset + 8 <= body.length) {
    const size = body.readUInt32BE(offset + 4);
    parts.push(body.subarray(offset + 8, offset + 8 + size).toString('utf8'));
    offset += 8 + size;
  }
  return parts.join('');
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  Pid: number;
  Restarting: boolean;
  ExitCode: number;
  StartedAt: string;
  Health?: { Status: string; Log?: { ExitCode: number; Output: string }[] };
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  RestartCount: number;
  State: ContainerState;
  HostConfig: Record<string, unknown>;
  Config: { Labels: Record<string, string>; Healthcheck?: Record<string, unknown> };
}

export function inspectContainer(name: string): Promise<ContainerInspect> {
  return dockerJson<ContainerInspect>('GET', `/containers/${encodeURIComponent(name)}/json`);
}

/** Names of what carries a label, per kind: what a teardown must leave empty. */
export async function labelled(
  label: string,
): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
  const filters = encodeURIComponent(JSON.stringify({ label: [label] }));
  const containers = await dockerJson<{ Names: string[] }[]>(
    'GET',
    `/containers/json?all=1&filters=${filters}`,
  );
  const networks = await dockerJson<{ Name: string }[]>('GET', `/networks?filters=${filters}`);
  const volumes = await dockerJson<{ Volumes: { Name: string }[] | null }>(
    'GET',
    `/volumes?filters=${filters}`,
  );
  return {
    containers: containers.flatMap((c) => c.Names.map((n) => n.replace(/^\//, ''))),
    networks: networks.map((n) => n.Name),
    volumes: (volumes.Volumes ?? []).map((v) => v.Name),
  };
}
