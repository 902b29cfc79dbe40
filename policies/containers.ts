/**
 * Container hardening: what infra/hardening.ts gives every container, checked on what reaches the engine, so a
 * container added without it (or a setting edited away) cannot deploy.
 */
import { configOf, type Finding, resourcePolicy } from './lib/policy.js';
import { type ContainerProps, docker } from './lib/resources.js';

// Types each check's argument once; the checks stay plain functions the tests call through the policy.
const container = (check: (c: ContainerProps) => Finding[]) => check;

export const checkReadOnlyRootfs = container((c) =>
  c.readOnly === true
    ? []
    : [
        {
          problem: 'its root filesystem is writable (readOnly is not true)',
          fix: 'set readOnly: true and give it tmpfs or volume mounts for the paths it writes',
        },
      ],
);

// uid 0 by number or name; an unset user is the image's, which for most images is root.
const ROOT_USER = /^(0|root)(:|$)/;

export const checkNonRootUser = container((c) => {
  const user = c.user ?? '';
  if (user === '')
    return [
      {
        problem: 'it sets no user, so it runs as the image user (often root)',
        fix: 'set user to a non-root uid:gid',
      },
    ];
  return ROOT_USER.test(user)
    ? [{ problem: `it runs as root (user ${JSON.stringify(user)})`, fix: 'set user to a non-root uid:gid' }]
    : [];
});

export const checkNotPrivileged = container((c) =>
  c.privileged === true
    ? [
        {
          problem: 'it is privileged',
          fix: 'remove privileged: true (add back the one capability it needs instead)',
        },
      ]
    : [],
);

export interface CapabilitiesConfig {
  /** Capabilities a container may add back after dropping ALL, by name (e.g. NET_BIND_SERVICE). */
  allowedAdds: string[];
}

const CAPABILITIES_DEFAULTS: CapabilitiesConfig = { allowedAdds: [] };

/** `CAP_NET_ADMIN` and `net_admin` are the same capability to docker. */
const capName = (cap: string) => cap.toUpperCase().replace(/^CAP_/, '');

export function checkCapabilities(c: ContainerProps, config: CapabilitiesConfig): Finding[] {
  const findings: Finding[] = [];
  if (!(c.capabilities?.drops ?? []).map(capName).includes('ALL'))
    findings.push({ problem: 'it keeps the default capabilities', fix: 'set capabilities.drops: ["ALL"]' });
  const allowed = config.allowedAdds.map(capName);
  const extra = (c.capabilities?.adds ?? []).filter((cap) => !allowed.includes(capName(cap)));
  if (extra.length > 0)
    findings.push({
      problem: `it adds back capabilities ${extra.join(', ')}, which are not named in allowedAdds`,
      fix: "remove them from capabilities.adds, or name each one in this policy's allowedAdds config",
    });
  return findings;
}

export const checkNoNewPrivileges = container((c) =>
  (c.securityOpts ?? []).some((o) => /^no-new-privileges(:true|=true)?$/.test(o))
    ? []
    : [
        {
          problem: 'setuid binaries can raise its privileges',
          fix: 'add "no-new-privileges:true" to securityOpts',
        },
      ],
);

export const checkResourceLimits = container((c) => {
  const findings: Finding[] = [];
  if (!(typeof c.memory === 'number' && c.memory > 0))
    findings.push({
      problem: 'it has no memory limit',
      fix: 'set memory (MiB), and memorySwap to the same value',
    });
  // The provider has no pids_limit (see infra/hardening.ts): RLIMIT_NPROC is the process bound it offers.
  const nproc = (c.ulimits ?? []).find((u) => u.name === 'nproc');
  if (nproc === undefined || !(nproc.hard > 0))
    findings.push({
      problem: 'it has no process limit',
      fix: 'add an nproc ulimit (the provider has no pids_limit), e.g. serving.pidsLimit in the stack config',
    });
  return findings;
});

const RESTART_POLICIES = ['always', 'unless-stopped', 'on-failure'];

export const checkRestartPolicy = container((c) =>
  RESTART_POLICIES.includes(c.restart ?? 'no')
    ? []
    : [
        {
          problem: `it is not restarted when it exits or the host reboots (restart ${JSON.stringify(c.restart ?? 'no')})`,
          fix: `set restart to one of ${RESTART_POLICIES.join(', ')}`,
        },
      ],
);

export const checkHealthcheck = container((c) => {
  const tests = c.healthcheck?.tests ?? [];
  return tests.length > 0 && tests[0] !== 'NONE'
    ? []
    : [
        {
          problem:
            'it has no healthcheck, so docker (and wait: true) cannot tell a hung container from a healthy one',
          fix: 'set healthcheck.tests to a command that probes it (["CMD", …])',
        },
      ];
});

// `local` rotates by itself; json-file only with both limits set.
export const checkLogRotation = container((c) => {
  const driver = c.logDriver ?? 'json-file';
  if (driver === 'local') return [];
  const opts = (c.logOpts ?? {}) as Record<string, string>;
  if (driver === 'json-file' && opts['max-size'] !== undefined && opts['max-file'] !== undefined) return [];
  return [
    {
      problem: `its logs are not rotated (logDriver ${driver}, logOpts ${JSON.stringify(opts)})`,
      fix: 'use logDriver json-file with logOpts max-size and max-file (serving.logMaxSizeMb, logMaxFiles)',
    },
  ];
});

export const checkNoHostNamespaces = container((c) => {
  const shared = (
    [
      ['networkMode', c.networkMode, 'network'],
      ['pidMode', c.pidMode, 'PID'],
      ['ipcMode', c.ipcMode, 'IPC'],
    ] as const
  ).filter(([, value]) => value === 'host');
  return shared.map(([key, , what]) => ({
    problem: `it shares the host's ${what} namespace (${key}: "host")`,
    fix: `remove ${key}: "host"${key === 'networkMode' ? ' and publish only the ports it serves' : ''}`,
  }));
});

const DOCKER_SOCKET = /(^|\/)docker\.sock$|^\/var\/run\/docker$|^\/run\/docker$/;

export const checkNoDangerousMounts = container((c) => {
  const sources = [
    ...(c.mounts ?? []).filter((m) => m.type === 'bind').map((m) => m.source ?? ''),
    ...(c.volumes ?? []).map((v) => v.hostPath ?? ''),
  ].filter((s) => s !== '');
  const findings: Finding[] = [];
  for (const source of sources) {
    const path = source.replace(/\/+$/, '') || '/';
    if (DOCKER_SOCKET.test(path))
      findings.push({
        problem: `it mounts the Docker socket (${source}): root on the host to anyone in the container`,
        fix: 'remove the mount',
      });
    else if (path === '/')
      findings.push({
        problem: 'it mounts the host root filesystem (/)',
        fix: 'mount only the directories it reads',
      });
  }
  return findings;
});

const policy = (name: string, description: string, check: (c: ContainerProps) => Finding[]) =>
  resourcePolicy({ name, description }, docker.Container, (c) => check(c));

export const containerPolicies = [
  policy(
    'container-read-only-rootfs',
    'Containers run with a read-only root filesystem.',
    checkReadOnlyRootfs,
  ),
  policy('container-non-root-user', 'Containers run as a non-root user.', checkNonRootUser),
  policy('container-not-privileged', 'Containers are never privileged.', checkNotPrivileged),
  resourcePolicy(
    {
      name: 'container-capabilities-dropped',
      description: 'Containers drop every capability and add back only ones this policy names.',
      configSchema: {
        properties: {
          allowedAdds: {
            type: 'array',
            items: { type: 'string' },
            default: CAPABILITIES_DEFAULTS.allowedAdds,
            description: 'Capabilities a container may add back after dropping ALL.',
          },
        },
      },
    },
    docker.Container,
    (c, args) => checkCapabilities(c, configOf(args, CAPABILITIES_DEFAULTS)),
  ),
  policy('container-no-new-privileges', 'Containers run with no-new-privileges.', checkNoNewPrivileges),
  policy(
    'container-resource-limits',
    'Containers have a memory limit and a process limit.',
    checkResourceLimits,
  ),
  policy('container-restart-policy', 'Containers have a restart policy.', checkRestartPolicy),
  policy('container-healthcheck', 'Containers have a healthcheck.', checkHealthcheck),
  policy('container-log-rotation', 'Container logs are rotated.', checkLogRotation),
  policy(
    'container-no-host-namespaces',
    "Containers share none of the host's network, PID or IPC namespaces.",
    checkNoHostNamespaces,
  ),
  policy(
    'container-no-dangerous-mounts',
    'Containers mount neither the Docker socket nor the host root filesystem.',
    checkNoDangerousMounts,
  ),
];
