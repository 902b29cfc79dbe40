/**
 * What the policies know about chatmirror's resources: the resource classes they check, each container's role,
 * the stack a URN belongs to, and the files the program writes to the host (so a policy can read the service
 * config a container will load). Everything here reads the properties the engine sends the analyzer: plain JSON
 * with secrets already unwrapped by @pulumi/policy.
 */
import * as command from '@pulumi/command';
import * as docker from '@pulumi/docker';
import type { PolicyResource, ResourceValidationArgs } from '@pulumi/policy';
import type { Unwrap } from '@pulumi/pulumi';

// Re-exported so tests fabricate arguments from the very classes (and @pulumi/pulumi copy) the pack checks.
export { command, docker };

export type ContainerProps = Unwrap<NonNullable<docker.ContainerArgs>>;
export type RemoteImageProps = Unwrap<NonNullable<docker.RemoteImageArgs>>;
export type LocalCommandProps = Unwrap<NonNullable<command.local.CommandArgs>>;
export type RemoteCommandProps = Unwrap<NonNullable<command.remote.CommandArgs>>;
export type CommandProps = LocalCommandProps | RemoteCommandProps;

/** What a resource looks like to a policy, in Analyze and in AnalyzeStack alike. */
export type Checked = Pick<ResourceValidationArgs, 'type' | 'name' | 'urn' | 'props'>;

/** A container's job, from the `chatmirror.role` label the program sets (or, without it, its image). */
export type Role = 'api' | 'balancer' | 'prometheus' | 'alertmanager' | 'grafana' | 'node-exporter' | 'redis';

/** Admin and data services: never published on every interface. */
export const ADMIN_ROLES: readonly Role[] = [
  'prometheus',
  'alertmanager',
  'grafana',
  'node-exporter',
  'redis',
];
/** Containers that publish the OpenAI-compatible API. */
export const API_ROLES: readonly Role[] = ['api', 'balancer'];

const ROLE_LABEL = 'chatmirror.role';
// Without the label (a container someone added by hand), the image's repository name says what it runs.
const IMAGE_ROLES: [Role, RegExp][] = [
  ['prometheus', /(^|\/)prometheus$/],
  ['alertmanager', /(^|\/)alertmanager$/],
  ['grafana', /(^|\/)grafana(-oss|-enterprise)?$/],
  ['node-exporter', /(^|\/)node-exporter$/],
  ['redis', /(^|\/)(redis|valkey)$/],
  ['balancer', /(^|\/)haproxy$/],
  ['api', /(^|\/)chatmirror(\/service)?$/],
];

// The label values the program sets (infra/*.ts `labels(…)`), by role.
const LABEL_ROLES: Record<string, Role> = {
  api: 'api',
  balancer: 'balancer',
  prometheus: 'prometheus',
  alertmanager: 'alertmanager',
  grafana: 'grafana',
  'node-exporter': 'node-exporter',
  'quota-store': 'redis',
  redis: 'redis',
};

export function roleOf(container: ContainerProps): Role | undefined {
  const label = container.labels?.find((l) => l.label === ROLE_LABEL)?.value;
  const labelled = label === undefined ? undefined : LABEL_ROLES[label];
  if (labelled !== undefined) return labelled;
  const repository = imageRepository(String(container.image ?? ''));
  return IMAGE_ROLES.find(([, pattern]) => pattern.test(repository))?.[0];
}

/** `registry:5000/org/name:tag@sha256:…` → `org/name` (registry host, tag and digest dropped). */
export function imageRepository(ref: string): string {
  const path = ref.split('@')[0]!.replace(/:[^:/]+$/, '');
  const parts = path.split('/');
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) parts.shift();
  return parts.join('/');
}

/** `urn:pulumi:STACK::PROJECT::TYPE::NAME` → STACK. */
export function stackOf(urn: string): string {
  return urn.split('::')[0]?.split(':')[2] ?? '';
}

/** The type token a generated resource class carries at runtime (the SDK keeps it out of the .d.ts). */
function tokenOf(resourceClass: unknown): string {
  return (resourceClass as { __pulumiType: string }).__pulumiType;
}

export const TYPES = {
  container: tokenOf(docker.Container),
  remoteImage: tokenOf(docker.RemoteImage),
  localCommand: tokenOf(command.local.Command),
  remoteCommand: tokenOf(command.remote.Command),
  dockerProvider: 'pulumi:providers:docker',
} as const;

export function isContainer(r: Checked): boolean {
  return r.type === TYPES.container;
}

export function isCommand(r: Checked): boolean {
  return r.type === TYPES.localCommand || r.type === TYPES.remoteCommand;
}

export function containers(resources: readonly PolicyResource[]): PolicyResource[] {
  return resources.filter(isContainer);
}

/** The containers of the stack with one of these roles. */
export function withRole(resources: readonly PolicyResource[], ...roles: Role[]): PolicyResource[] {
  return containers(resources).filter((r) => {
    const role = roleOf(r.props as ContainerProps);
    return role !== undefined && roles.includes(role);
  });
}

export function containerProps(r: Checked): ContainerProps {
  return r.props as ContainerProps;
}

export function commandProps(r: Checked): CommandProps {
  return r.props as CommandProps;
}

/** The published host port of a `ports` entry (docker picks one when `external` is unset). */
export function publishedPort(port: { internal: number; external?: number | undefined }): number {
  return port.external ?? port.internal;
}

export interface LocalityConfig {
  /** Stacks that deploy to the machine running pulumi (loopback only, no firewall, no benchmarks). */
  localStacks: string[];
}

export const LOCALITY_DEFAULTS: LocalityConfig = { localStacks: ['local'] };

/**
 * A stack counts as local only when its name says so and nothing in it reaches another machine: a stack named
 * `local` that deploys over SSH gets the non-local rules.
 */
export function isLocalStack(resources: readonly PolicyResource[], config: LocalityConfig): boolean {
  const stack = stackOf(resources[0]?.urn ?? '');
  if (!config.localStacks.includes(stack)) return false;
  return !resources.some(
    (r) =>
      r.type === TYPES.remoteCommand ||
      (r.type === TYPES.dockerProvider && /^(ssh|tcp|https?):\/\//.test(String(r.props.host ?? ''))),
  );
}
