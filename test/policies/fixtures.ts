/**
 * Resources fabricated from the provider classes (@pulumi/docker Container, RemoteImage; @pulumi/command local
 * and remote Command) with the properties a compliant staging stack has; each test changes one thing.
 */
import {
  type ContainerProps,
  command,
  docker,
  type RemoteCommandProps,
} from '../../policies/lib/resources.js';
import { type AnalyzedResource, fabricate } from './harness.js';

export const DIGEST = `sha256:${'a'.repeat(64)}`;
export const MANIFEST = 'e'.repeat(64);
const CONNECTION = {
  host: '198.51.100.20',
  user: 'deploy',
  privateKey: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n',
};

/** What infra/hardening.ts gives every container. */
export function hardened(role: string, overrides: Partial<ContainerProps> = {}): ContainerProps {
  return {
    image: `registry.example.com/chatmirror/${role}@${DIGEST}`,
    user: '10001:10001',
    readOnly: true,
    capabilities: { drops: ['ALL'] },
    securityOpts: ['no-new-privileges:true'],
    memory: 512,
    memorySwap: 512,
    cpus: '1',
    ulimits: [{ name: 'nproc', soft: 128, hard: 128 }],
    logDriver: 'json-file',
    logOpts: { 'max-size': '10m', 'max-file': '3' },
    restart: 'unless-stopped',
    healthcheck: { tests: ['CMD', 'true'], interval: '15s' },
    labels: [{ label: 'chatmirror.role', value: role }],
    ...overrides,
  };
}

export const container = (
  name: string,
  props: ContainerProps,
  o: { stack?: string; dependencies?: string[] } = {},
) => fabricate(docker.Container, name, props, o);

/** The file channel of infra/render/shell.ts: `dir='…'` in the script, `MODE NAME BASE64` lines on stdin. */
export function filesWriter(name: string, dir: string, files: Record<string, string>, stack = 'staging') {
  const props: RemoteCommandProps = {
    connection: CONNECTION,
    create: `set -eu\numask 027\ndir='${dir}'\nwhile read -r mode name b64; do :; done`,
    stdin: `${Object.entries(files)
      .map(([file, content]) => `0640 ${file} ${Buffer.from(content).toString('base64')}`)
      .join('\n')}\n`,
  };
  return fabricate(command.remote.Command, name, props, { stack });
}

export const SERVICE_CONFIG = `server:
  port: 8443
  tls:
    enabled: true
    certFile: /etc/chatmirror/tls/server.crt
    keyFile: /etc/chatmirror/tls/server.key
  publicBaseUrl: https://staging.chat.example.com:8443
engine:
  modelDir: /models/smollm2
auth:
  apiKeys:
    - id: prometheus
      hash: sha256:${'1'.repeat(64)}
      scopes: [metrics:read]
    - id: qa
      hash: sha256:${'2'.repeat(64)}
      scopes: [chat]
quotas:
  store: memory
metrics:
  enabled: true
`;

export const RULESET = `#!/usr/sbin/nft -f
table inet chatmirror_staging
delete table inet chatmirror_staging
table inet chatmirror_staging {
	set api_v4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8, 203.0.113.0/24 }
	}

	chain forward {
		type filter hook forward priority -10; policy accept;
		ct state established,related accept
		ct direction original ct status dnat meta l4proto tcp ct original proto-dst 8443 jump api_clients
	}

	chain input {
		type filter hook input priority -10; policy accept;
		tcp dport 8443 jump api_clients
	}

	chain api_clients {
		ip saddr @api_v4 accept
		counter drop
	}
}
`;

export function firewall(ruleset = RULESET, stack = 'staging') {
  return fabricate(
    command.remote.Command,
    'firewall-nft',
    {
      connection: CONNECTION,
      create: 'set -eu\nruleset=$(cat)\nprintf "%s\\n" "$ruleset" | sudo -n nft -f -',
      stdin: ruleset,
    },
    { stack },
  );
}

export function modelCheck(dir = '/srv/models/smollm2', stack = 'staging') {
  const script = `set -eu\ncd '${dir}'\nprintf '%s  SHA256SUMS\\n' '${MANIFEST}' | sha256sum --check --strict --quiet -\nsha256sum --check --strict --quiet SHA256SUMS`;
  return fabricate(
    command.remote.Command,
    'model-sha256',
    { connection: CONNECTION, create: script, update: script, triggers: [dir, MANIFEST] },
    { stack },
  );
}

export const BENCH_TIMER = '[Timer]\nOnCalendar=*-*-* 02:00:00\nUnit=chatmirror-bench-staging.service\n';

export function benchTimer(stack = 'staging') {
  return fabricate(
    command.remote.Command,
    'benchmarks-timer',
    {
      connection: CONNECTION,
      create: 'set -eu\nwhile read -r mode file b64; do :; done',
      stdin: `0644 chatmirror-bench-${stack}.timer ${Buffer.from(BENCH_TIMER).toString('base64')}\n`,
    },
    { stack },
  );
}

export interface StackOptions {
  stack?: string;
  serviceConfig?: string;
  api?: Partial<ContainerProps>;
  /** Leave these out by name. */
  without?: string[];
  extra?: AnalyzedResource[];
}

/** A compliant one-replica staging stack: config writer, model check, firewall, API, Prometheus, bench timer. */
export function stack(o: StackOptions = {}): AnalyzedResource[] {
  const name = o.stack ?? 'staging';
  const writer = filesWriter(
    'service-files-write',
    `/srv/chatmirror/${name}/service`,
    {
      'config.yaml': o.serviceConfig ?? SERVICE_CONFIG,
    },
    name,
  );
  const check = modelCheck('/srv/models/smollm2', name);
  const fw = firewall(RULESET.replaceAll('chatmirror_staging', `chatmirror_${name}`), name);
  const api = container(
    `chatmirror-${name}-0`,
    hardened('api', {
      command: ['serve', '--config', '/etc/chatmirror/config.yaml'],
      mounts: [
        {
          type: 'bind',
          source: `/srv/chatmirror/${name}/service`,
          target: '/etc/chatmirror',
          readOnly: true,
        },
        { type: 'bind', source: '/srv/models/smollm2', target: '/models/smollm2', readOnly: true },
      ],
      ports: [{ internal: 8443, external: 8443, ip: '198.51.100.20', protocol: 'tcp' }],
      ...o.api,
    }),
    { stack: name, dependencies: [writer.urn, check.urn, fw.urn] },
  );
  const prometheus = container(
    `chatmirror-${name}-prometheus`,
    hardened('prometheus', { ports: [{ internal: 9090, external: 9090, ip: '198.51.100.20' }] }),
    { stack: name },
  );
  return [
    ...[writer, check, fw, api, prometheus, benchTimer(name)].filter(
      (r) => !(o.without ?? []).includes(r.name),
    ),
    ...(o.extra ?? []),
  ];
}
