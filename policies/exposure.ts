/**
 * Who can reach what: admin and data services never on every interface; outside the local stack, a published
 * API port only behind a firewall of the same stack that admits the configured client networks.
 */
import type { PolicyResource } from '@pulumi/policy';
import { accessTo, looksLikeRuleset, parseRuleset } from './lib/nft.js';
import { configOf, type Finding, resourcePolicy, type StackFinding, stackPolicy } from './lib/policy.js';
import {
  ADMIN_ROLES,
  API_ROLES,
  type ContainerProps,
  commandProps,
  containerProps,
  docker,
  isCommand,
  isLocalStack,
  LOCALITY_DEFAULTS,
  type LocalityConfig,
  publishedPort,
  roleOf,
  withRole,
} from './lib/resources.js';

// An unset ip is docker's default: every IPv4 and IPv6 interface.
const WILDCARD_IPS = ['', '0.0.0.0', '::', '[::]'];

export function checkAdminPortsPrivate(c: ContainerProps): Finding[] {
  const role = roleOf(c);
  if (role === undefined || !ADMIN_ROLES.includes(role)) return [];
  const findings: Finding[] = [];
  if (c.publishAllPorts === true)
    findings.push({
      problem: `${role} publishes every exposed port on all interfaces (publishAllPorts)`,
      fix: 'remove publishAllPorts; publish single ports on an operations address',
    });
  for (const port of c.ports ?? []) {
    const ip = port.ip ?? '';
    if (WILDCARD_IPS.includes(ip))
      findings.push({
        problem: `${role} port ${publishedPort(port)} is published on ${ip === '' ? 'every interface (no ip)' : ip}`,
        fix: 'bind it to loopback or an operations address: monitoring.bindAddresses in the stack config',
      });
  }
  return findings;
}

// Published on loopback, a port is reachable from this host only: no firewall needed for it.
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/;

/** The API ports the stack publishes beyond loopback, by container. */
export function publishedApi(resources: readonly PolicyResource[]) {
  return withRole(resources, ...API_ROLES).flatMap((r) =>
    (containerProps(r).ports ?? [])
      .filter((port) => !LOOPBACK.test(port.ip ?? ''))
      .map((port) => ({ resource: r, port })),
  );
}

/** The nft rulesets the stack's commands apply, by command. */
export function firewallsOf(resources: readonly PolicyResource[]) {
  return resources
    .filter((r) => isCommand(r) && looksLikeRuleset(String(commandProps(r).stdin ?? '')))
    .map((r) => ({ resource: r, ruleset: parseRuleset(String(commandProps(r).stdin)) }));
}

export const exposurePolicies = [
  resourcePolicy(
    {
      name: 'admin-ports-not-public',
      description:
        'Prometheus, Alertmanager, Grafana, node-exporter and Redis are never published on 0.0.0.0 or ::.',
    },
    docker.Container,
    (c) => checkAdminPortsPrivate(c),
  ),
  stackPolicy(
    {
      name: 'api-port-firewalled',
      description:
        'Outside the local stack, a published API port needs a firewall of the same stack that admits only the configured client networks.',
      configSchema: {
        properties: {
          localStacks: {
            type: 'array',
            items: { type: 'string' },
            default: LOCALITY_DEFAULTS.localStacks,
            description: 'Stacks that deploy to the machine running pulumi, on loopback.',
          },
        },
      },
    },
    (args) => {
      const config = configOf<LocalityConfig>(args, LOCALITY_DEFAULTS);
      if (isLocalStack(args.resources, config)) return [];
      const firewalls = firewallsOf(args.resources);
      const findings: StackFinding[] = [];
      for (const { resource, port } of publishedApi(args.resources)) {
        const host = publishedPort(port);
        if (firewalls.some((f) => accessTo(f.ruleset, host).restricted)) continue;
        findings.push({
          resource,
          problem:
            firewalls.length === 0
              ? `publishes the API on ${port.ip ?? '*'}:${host} and no resource of this stack applies a firewall`
              : `publishes the API on ${port.ip ?? '*'}:${host} and no firewall of this stack restricts that port to listed client networks`,
          fix: 'set firewall.enabled: true and firewall.apiCidrs to the client networks in the stack config',
        });
      }
      return findings;
    },
  ),
];
