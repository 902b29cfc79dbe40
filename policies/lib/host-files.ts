/**
 * The files the program writes to the host, read back from the commands that write them, so a policy can check
 * what a container will actually load (the service config, systemd units) rather than trust the stack config.
 * The program's file channel (infra/render/shell.ts `filesToStdin`/`writeFilesScript`): stdin holds one line per
 * file, `MODE NAME BASE64`, and the script writes them under `dir='…'`.
 */
import type { PolicyResource } from '@pulumi/policy';
import { parse as parseYaml } from 'yaml';
import { type Checked, type ContainerProps, commandProps, isCommand } from './resources.js';

export interface HostFile {
  /** Absolute host path, or the bare name when the command names no directory (systemd units). */
  path: string;
  name: string;
  mode: string;
  content: string;
  /** URN of the command that writes it. */
  writer: string;
}

const FILE_LINE = /^(0[0-7]{3}) ([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*) ([A-Za-z0-9+/=]*)$/;
// `dir='…'` as shq quotes it: single quotes, an embedded quote written as '\''.
const DIR_LINE = /^dir='((?:[^']|'\\'')*)'$/m;

/** The files one command writes; empty when its stdin is not the file channel. */
export function filesOf(resource: Checked): HostFile[] {
  if (!isCommand(resource)) return [];
  const props = commandProps(resource);
  const lines = String(props.stdin ?? '')
    .split('\n')
    .filter((line) => line !== '');
  const parsed = lines.map((line) => FILE_LINE.exec(line));
  if (parsed.length === 0 || parsed.some((m) => m === null)) return [];
  const dir = DIR_LINE.exec(String(props.create ?? ''))?.[1]?.replace(/'\\''/g, "'");
  return parsed.map((m) => {
    const [, mode = '', name = '', b64 = ''] = m!;
    return {
      path: dir === undefined ? name : `${dir.replace(/\/$/, '')}/${name}`,
      name,
      mode,
      content: Buffer.from(b64, 'base64').toString('utf8'),
      writer: resource.urn,
    };
  });
}

export function hostFiles(resources: readonly Checked[]): HostFile[] {
  return resources.flatMap(filesOf);
}

/** The host path behind a path inside the container, through its bind mounts (the deepest target wins). */
export function hostPathOf(container: ContainerProps, path: string): string | undefined {
  const binds = [
    ...(container.mounts ?? [])
      .filter((m) => m.type === 'bind' && m.source !== undefined)
      .map((m) => ({ source: m.source!, target: m.target })),
    ...(container.volumes ?? [])
      .filter((v) => v.hostPath !== undefined && v.containerPath !== undefined)
      .map((v) => ({ source: v.hostPath!, target: v.containerPath! })),
  ];
  const bind = binds
    .filter((b) => path === b.target || path.startsWith(`${b.target.replace(/\/$/, '')}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
  if (bind === undefined) return undefined;
  return `${bind.source.replace(/\/$/, '')}${path.slice(bind.target.replace(/\/$/, '').length)}`;
}

/** Where the service reads its config: `--config PATH` (or `--config=PATH`), else $CHATMIRROR_CONFIG. */
export function serviceConfigPath(container: ContainerProps): string | undefined {
  const args = container.command ?? [];
  for (const [i, arg] of args.entries()) {
    if (arg === '--config') return args[i + 1];
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return container.envs?.find((e) => e.startsWith('CHATMIRROR_CONFIG='))?.slice('CHATMIRROR_CONFIG='.length);
}

/** The parts of the service config (service/config/schema.ts) the policies read; the rest passes through. */
export interface ServiceConfig {
  server?: {
    port?: number;
    tls?: { enabled?: boolean; certFile?: string; keyFile?: string };
    publicBaseUrl?: string;
  };
  engine?: { modelDir?: string };
  auth?: { publicRoutes?: string[]; jwt?: unknown; apiKeys?: { id: string; scopes: string[] }[] | null };
  quotas?: { store?: string; redisUrl?: string };
  metrics?: { enabled?: boolean; port?: number };
}

export type ServiceConfigLookup =
  | { ok: true; config: ServiceConfig; hostPath: string; writer: string }
  | { ok: false; reason: string };

/** The service config an API container will load, as the program writes it to the host. */
export function serviceConfigOf(container: PolicyResource, files: readonly HostFile[]): ServiceConfigLookup {
  const props = container.props as ContainerProps;
  const inContainer = serviceConfigPath(props);
  if (inContainer === undefined)
    return { ok: false, reason: 'its command names no --config and CHATMIRROR_CONFIG is unset' };
  const hostPath = hostPathOf(props, inContainer);
  if (hostPath === undefined) return { ok: false, reason: `no bind mount provides ${inContainer}` };
  const file = files.find((f) => f.path === hostPath);
  if (file === undefined)
    return { ok: false, reason: `no resource of this stack writes ${hostPath} (mounted at ${inContainer})` };
  try {
    return {
      ok: true,
      config: (parseYaml(file.content) ?? {}) as ServiceConfig,
      hostPath,
      writer: file.writer,
    };
  } catch (e) {
    return { ok: false, reason: `${hostPath} is not YAML: ${(e as Error).message}` };
  }
}
