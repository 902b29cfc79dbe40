/**
 * What a non-local stack must serve: HTTPS only, credentials on every route but the probes, metrics behind them,
 * a benchmark schedule, and replicas only with shared quotas behind one endpoint. Read from the service config
 * each API container will load (as the program writes it to the host) and from the resources themselves, not
 * from the stack config, so a setting the program dropped on the way is caught too.
 */
import type { PolicyResource, StackValidationArgs } from '@pulumi/policy';
import { hostFiles, type ServiceConfig, serviceConfigOf } from './lib/host-files.js';
import { configOf, type Finding, type StackFinding, stackPolicy } from './lib/policy.js';
import {
  containerProps,
  containers,
  isLocalStack,
  LOCALITY_DEFAULTS,
  type LocalityConfig,
  publishedPort,
  roleOf,
  stackOf,
  withRole,
} from './lib/resources.js';

export function checkTls(config: ServiceConfig): Finding[] {
  const tls = config.server?.tls ?? {};
  if (tls.enabled === false)
    return [
      {
        problem: 'the service config turns TLS off (server.tls.enabled: false)',
        fix: 'serve HTTPS: tls.mode ca or provided',
      },
    ];
  if (tls.certFile === undefined || tls.keyFile === undefined)
    return [
      {
        problem:
          'the service config names no certificate (server.tls.certFile/keyFile), so it would make a self-signed development one',
        fix: 'set tls.mode to ca or provided in the stack config',
      },
    ];
  return [];
}

const PROBE_ROUTES = ['/health', '/ready'];

export function checkAuth(config: ServiceConfig): Finding[] {
  const auth = config.auth ?? {};
  const findings: Finding[] = [];
  if (auth.jwt === undefined && (auth.apiKeys ?? []).length === 0)
    findings.push({
      problem:
        'the service accepts no credentials (neither auth.jwt nor auth.apiKeys), so every route is open',
      fix: 'set chatmirror:auth.jwt or chatmirror:apiKeys (pulumi config set --secret apiKeys …)',
    });
  const open = (auth.publicRoutes ?? PROBE_ROUTES).filter((r) => !PROBE_ROUTES.includes(r));
  if (open.length > 0)
    findings.push({
      problem: `routes ${open.join(', ')} are served without credentials (auth.publicRoutes)`,
      fix: `leave auth.publicRoutes at ${PROBE_ROUTES.join(', ')}`,
    });
  return findings;
}

export function checkHttpOff(config: ServiceConfig): Finding[] {
  const findings: Finding[] = [];
  if (config.server?.tls?.enabled === false)
    findings.push({
      problem: 'the API is served over plain HTTP',
      fix: 'serve HTTPS: tls.mode ca or provided',
    });
  if (config.metrics?.port !== undefined)
    findings.push({
      problem: `metrics are served on a separate plain-HTTP listener (metrics.port ${config.metrics.port})`,
      fix: 'unset the metrics port so /metrics is served over HTTPS on the API port',
    });
  if (/^http:\/\//.test(config.server?.publicBaseUrl ?? ''))
    findings.push({
      problem: `clients are told to use ${config.server?.publicBaseUrl} (server.publicBaseUrl)`,
      fix: 'use an https:// serving.publicHost',
    });
  return findings;
}

export function checkMetricsProtected(config: ServiceConfig): Finding[] {
  if (config.metrics?.enabled === false) return [];
  const findings: Finding[] = [];
  if ((config.auth?.publicRoutes ?? PROBE_ROUTES).some((r) => r === '/metrics' || r === '/'))
    findings.push({
      problem: '/metrics is served without credentials (auth.publicRoutes)',
      fix: 'remove /metrics from auth.publicRoutes; Prometheus scrapes with the metricsToken',
    });
  if (config.metrics?.port !== undefined)
    findings.push({
      problem: `metrics.port ${config.metrics.port} serves /metrics without the API's authentication`,
      fix: 'unset the metrics port so /metrics needs a metrics:read credential',
    });
  const scrapers = (config.auth?.apiKeys ?? []).filter((k) => k.scopes.includes('metrics:read'));
  if (config.auth?.jwt === undefined && scrapers.length === 0)
    findings.push({
      problem: 'no credential has the metrics:read scope, so Prometheus cannot scrape (or metrics are open)',
      fix: 'set chatmirror:metricsToken (pulumi config set --secret metricsToken …)',
    });
  return findings;
}

/** The API containers of a stack and the service config each will load. */
function apiConfigs(resources: readonly PolicyResource[]) {
  const files = hostFiles(resources);
  return withRole(resources, 'api').map((resource) => ({
    resource,
    lookup: serviceConfigOf(resource, files),
  }));
}

const LOCALITY_SCHEMA = {
  properties: {
    localStacks: {
      type: 'array' as const,
      items: { type: 'string' as const },
      default: LOCALITY_DEFAULTS.localStacks,
      description: 'Stacks that deploy to the machine running pulumi, on loopback.',
    },
  },
};

/** A stack policy over each API container's service config, outside the local stack. */
function serviceConfigPolicy(name: string, description: string, check: (config: ServiceConfig) => Finding[]) {
  return stackPolicy({ name, description, configSchema: LOCALITY_SCHEMA }, (args) => {
    if (isLocalStack(args.resources, configOf<LocalityConfig>(args, LOCALITY_DEFAULTS))) return [];
    return apiConfigs(args.resources).flatMap(({ resource, lookup }): StackFinding[] =>
      lookup.ok
        ? check(lookup.config).map((f) => ({ ...f, resource }))
        : [
            {
              resource,
              problem: `its service config cannot be read: ${lookup.reason}`,
              fix: 'let the program write the service config (HostFiles) and mount it read-only',
            },
          ],
    );
  });
}

const TIMER_FILE = /\.timer$/;

/** Commands that install a systemd timer with a calendar schedule (the benchmark job). */
export function checkBenchmarkSchedule(resources: readonly PolicyResource[]): StackFinding[] {
  const timers = hostFiles(resources).filter(
    (f) => TIMER_FILE.test(f.name) && /^OnCalendar=\S/m.test(f.content) && /bench/.test(f.name),
  );
  return timers.length > 0
    ? []
    : [
        {
          problem: `stack ${stackOf(resources[0]?.urn ?? '')} installs no benchmark timer, so regressions go unmeasured`,
          fix: 'set benchmarks.enabled: true and benchmarks.schedule in the stack config',
        },
      ];
}

export interface ReplicasConfig extends LocalityConfig {
  /** Stacks where the replicas rule only warns (the issue: advisory in staging). */
  advisoryStacks: string[];
}

const REPLICAS_DEFAULTS: ReplicasConfig = { ...LOCALITY_DEFAULTS, advisoryStacks: ['staging'] };

/** More than one API replica: quotas counted in one Redis, and the API published once (by the balancer). */
export function checkReplicas(resources: readonly PolicyResource[]): StackFinding[] {
  const apis = apiConfigs(resources);
  if (apis.length <= 1) return [];
  const findings: StackFinding[] = [];
  const redis = withRole(resources, 'redis');
  for (const { resource, lookup } of apis) {
    if (!lookup.ok || lookup.config.quotas?.store !== 'redis')
      findings.push({
        resource,
        problem: `${apis.length} replicas each count quotas on their own (quotas.store is not redis), so a client gets ${apis.length}× its quota`,
        fix: 'set chatmirror:quotaStorePassword so the replicas share the Redis quota store',
      });
    else if (redis.length === 0)
      findings.push({
        resource,
        problem: `quotas.store is redis (${lookup.config.quotas.redisUrl ?? 'no redisUrl'}) but the stack runs no Redis container`,
        fix: 'set chatmirror:quotaStorePassword so the program runs the quota store',
      });
  }
  const publishers = containers(resources).filter((r) => {
    const role = roleOf(containerProps(r));
    return (role === 'api' || role === 'balancer') && (containerProps(r).ports ?? []).length > 0;
  });
  if (publishers.length !== 1)
    findings.push({
      ...(publishers[0] === undefined ? {} : { resource: publishers[0] }),
      problem: `${apis.length} replicas are reached through ${publishers.length} published endpoints (${publishers
        .map((p) => `${p.name}:${(containerProps(p).ports ?? []).map(publishedPort).join(',')}`)
        .join('; ')})`,
      fix: 'publish the API once, on the load balancer, and leave the replicas unpublished',
    });
  return findings;
}

function replicasPolicy(name: string, enforcementLevel: 'mandatory' | 'advisory', inAdvisoryStacks: boolean) {
  return stackPolicy(
    {
      name,
      description: inAdvisoryStacks
        ? 'Replicas > 1 only with a shared quota store and one load-balanced endpoint (advisory stacks: warns).'
        : 'Replicas > 1 only with a shared quota store and one load-balanced endpoint.',
      enforcementLevel,
      configSchema: {
        properties: {
          ...LOCALITY_SCHEMA.properties,
          advisoryStacks: {
            type: 'array',
            items: { type: 'string' },
            default: REPLICAS_DEFAULTS.advisoryStacks,
            description: 'Stacks where this rule warns instead of blocking.',
          },
        },
      },
    },
    (args: StackValidationArgs) => {
      const config = configOf(args, REPLICAS_DEFAULTS);
      if (isLocalStack(args.resources, config)) return [];
      const advisory = config.advisoryStacks.includes(stackOf(args.resources[0]?.urn ?? ''));
      return advisory === inAdvisoryStacks ? checkReplicas(args.resources) : [];
    },
  );
}

export const servicePolicies = [
  serviceConfigPolicy(
    'service-tls',
    'Outside the local stack, the API serves HTTPS with a real certificate.',
    checkTls,
  ),
  serviceConfigPolicy(
    'service-auth',
    'Outside the local stack, every route but the probes needs a JWT or an API key.',
    checkAuth,
  ),
  serviceConfigPolicy(
    'service-http-off',
    'Outside the local stack, nothing is served over plain HTTP.',
    checkHttpOff,
  ),
  serviceConfigPolicy(
    'service-metrics-protected',
    'Outside the local stack, /metrics needs a metrics:read credential.',
    checkMetricsProtected,
  ),
  stackPolicy(
    {
      name: 'benchmark-schedule',
      description: 'Outside the local stack, a benchmark timer runs on a schedule.',
      configSchema: LOCALITY_SCHEMA,
    },
    (args) =>
      isLocalStack(args.resources, configOf<LocalityConfig>(args, LOCALITY_DEFAULTS))
        ? []
        : checkBenchmarkSchedule(args.resources),
  ),
  replicasPolicy('replicas-shared-state', 'mandatory', false),
  replicasPolicy('replicas-shared-state-advisory', 'advisory', true),
];
