/**
 * More than one replica (issue 9, items 7 and 8): one HAProxy publishes the API port, the replicas publish nothing
 * and roll one at a time (create-before-delete, each after the previous one), and they share a Redis quota store
 * whose password is a secret. The rendered haproxy.cfg and redis.conf are checked by the real haproxy and
 * redis-server (Debian's packages), skipped only where they are missing and CI is not set.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../service/config/load.js';
import { RedisStore } from '../../service/security/quotas/redis-store.js';
import { QUOTA_STORE_PASSWORD, stackPlanOptions } from './fixtures.js';
import { decodeStdin, find, type Plan, type PlannedResource, planStack } from './plan.js';

const CONTAINER = 'docker:index/container:Container';

function replicasOf(plan: Plan, stack: string): PlannedResource[] {
  return plan.resources
    .filter((r) => r.type === CONTAINER && new RegExp(`^chatmirror-${stack}-\\d$`).test(r.name))
    .sort((a, b) => a.name.localeCompare(b.name));
}

const label = (r: PlannedResource, key: string) =>
  (r.inputs.labels as { label: string; value: string }[]).find((l) => l.label === key)?.value;

const installed = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const skipUnless = (ok: boolean, what: string) => {
  if (!ok && process.env.CI !== 'true') {
    console.warn(`${what} is not installed: its check is skipped (apt-get install -y ${what})`);
    return true;
  }
  return false;
};
const SKIP_HAPROXY = skipUnless(installed('haproxy', ['-v']), 'haproxy');
const SKIP_REDIS = skipUnless(installed('redis-server', ['--version']), 'redis-server');

let prod: Plan;
let local: Plan;
beforeAll(async () => {
  prod = await planStack(await stackPlanOptions('prod'));
  local = await planStack(await stackPlanOptions('local'));
});

describe('prod: two replicas behind a load balancer', () => {
  it('publishes the API port on the balancer only, and the endpoint names it', () => {
    const balancer = find(prod, 'chatmirror-prod-balancer');
    expect(balancer.inputs.ports).toEqual([
      { internal: 8443, external: 8443, ip: '203.0.113.10', protocol: 'tcp' },
    ]);
    expect(balancer.inputs).toMatchObject({
      user: '99:10001',
      readOnly: true,
      capabilities: { drops: ['ALL'] },
      command: ['-W', '-db', '-f', '/etc/haproxy/stack/haproxy.cfg'],
      stopSignal: 'SIGUSR1',
      wait: true,
    });
    const replicas = replicasOf(prod, 'prod');
    expect(replicas).toHaveLength(2);
    for (const replica of replicas) expect(replica.inputs.ports).toEqual([]);
    const published = prod.resources
      .filter((r) => r.type === CONTAINER && ((r.inputs.ports as unknown[] | undefined) ?? []).length > 0)
      .map((r) => r.name);
    expect(published).not.toContain('chatmirror-prod-1');
    expect(published).not.toContain('chatmirror-prod-redis');
    expect(prod.outputs.endpoint).toBe('https://chat.example.com:8443');
    // The firewall opens the balancer's port, and no longer port + i.
    const nft = String(find(prod, 'firewall-nft').inputs.stdin);
    expect(nft).toContain('8443');
    expect(nft).not.toContain('8444');
  });

  it('replaces the replicas one after another, creating each before deleting its predecessor', () => {
    const [first, second] = replicasOf(prod, 'prod');
    expect(second!.options.dependencies).toContain(first!.urn);
    expect(first!.options.dependencies).not.toContain(second!.urn);
    expect(first!.options.deleteBeforeReplace).toBe(false);
    expect(second!.options.deleteBeforeReplace).toBe(false);
    // Names that carry a hash of their settings, so old and new can exist side by side, and one shared alias.
    for (const [i, replica] of [first!, second!].entries()) {
      expect(replica.inputs.name).toMatch(new RegExp(`^chatmirror-prod-${i}-[0-9a-f]{8}$`));
      expect(replica.inputs.networksAdvanced).toEqual([
        { name: 'chatmirror-prod', aliases: ['chatmirror', `chatmirror-prod-${i}`] },
      ]);
      expect(replica.inputs).toMatchObject({ wait: true, healthcheck: expect.any(Object) });
    }
    expect(prod.outputs.containers).toEqual([first!.inputs.name, second!.inputs.name]);
    // The balancer finds whichever containers carry the alias; it is not part of the chain a replica waits for.
    const balancer = find(prod, 'chatmirror-prod-balancer');
    expect(balancer.options.dependencies).toEqual(expect.arrayContaining([first!.urn, second!.urn]));
  });

  it('changing a config value changes every replica: name and trigger', async () => {
    const options = await stackPlanOptions('prod');
    const serving = options.config['chatmirror:serving'] as Record<string, unknown>;
    const changed = await planStack({
      ...options,
      config: {
        ...options.config,
        'chatmirror:serving': { ...serving, quotas: { requestsPerMinute: 61, tokensPerMinute: 40000 } },
      },
    });
    const before = replicasOf(prod, 'prod');
    const after = replicasOf(changed, 'prod');
    expect(after.map((r) => r.urn)).toEqual(before.map((r) => r.urn)); // the same resources, replaced
    for (const [i, replica] of after.entries()) {
      expect(replica.inputs.name).not.toBe(before[i]!.inputs.name);
      expect(label(replica, 'chatmirror.config-sha256')).not.toBe(
        label(before[i]!, 'chatmirror.config-sha256'),
      );
    }
    // Nothing else about the balancer changes: it keeps serving while the replicas roll.
    expect(find(changed, 'chatmirror-prod-balancer').inputs).toEqual(
      find(prod, 'chatmirror-prod-balancer').inputs,
    );
  });

  it('a new quota store password still rolls the replicas (they read it only at start-up)', async () => {
    const options = await stackPlanOptions('prod');
    const changed = await planStack({
      ...options,
      config: { ...options.config, 'chatmirror:quotaStorePassword': 'a'.repeat(32) },
    });
    const before = replicasOf(prod, 'prod').map((r) => r.inputs.name);
    const after = replicasOf(changed, 'prod').map((r) => r.inputs.name);
    for (const [i, name] of after.entries()) expect(name).not.toBe(before[i]);
  });

  it('runs an unpublished, hardened Redis whose password is only in secret files', () => {
    const redis = find(prod, 'chatmirror-prod-redis');
    expect(redis.inputs.ports ?? []).toEqual([]);
    expect(redis.inputs).toMatchObject({
      user: '999:10001',
      readOnly: true,
      capabilities: { drops: ['ALL'] },
      securityOpts: ['no-new-privileges:true'],
      command: ['/etc/redis/stack/redis.conf'],
      networksAdvanced: [{ name: 'chatmirror-prod', aliases: ['chatmirror-prod-redis'] }],
      tmpfs: { '/data': expect.stringContaining('size=16m'), '/tmp': expect.any(String) },
    });
    expect(JSON.stringify(redis.inputs)).not.toContain(QUOTA_STORE_PASSWORD);
    const files = find(prod, 'quota-store-files-write');
    expect(files.secretPaths).toContain('stdin');
    expect(decodeStdin(files)['redis.conf']).toContain(`requirepass ${QUOTA_STORE_PASSWORD}`);
    // The replicas wait for it.
    for (const replica of replicasOf(prod, 'prod')) expect(replica.options.dependencies).toContain(redis.urn);
    // No container gets the password on its command line or in its environment.
    for (const c of prod.resources.filter((r) => r.type === CONTAINER))
      expect(JSON.stringify([c.inputs.command, c.inputs.envs, c.inputs.entrypoints])).not.toContain(
        QUOTA_STORE_PASSWORD,
      );
  });

  it('renders a service config, accepted by the service, that counts quotas in that Redis', () => {
    const files = find(prod, 'service-files-write');
    expect(files.secretPaths).toContain('stdin');
    const rendered = decodeStdin(files);
    // The password is a file of its own, mounted read-only with the config (at /etc/chatmirror); no config.yaml
    // of any stack holds it.
    expect(rendered['secrets/redis-password']).toBe(`${QUOTA_STORE_PASSWORD}\n`);
    for (const plan of [prod, local])
      expect(decodeStdin(find(plan, 'service-files-write'))['config.yaml']).not.toContain(
        QUOTA_STORE_PASSWORD,
      );
    // Loaded as the container sees it: the config's absolute paths moved to a copy of its mount.
    const dir = mkdtempSync(join(tmpdir(), 'chatmirror-replicas-'));
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets/redis-password'), rendered['secrets/redis-password']!);
    writeFileSync(join(dir, 'config.yaml'), rendered['config.yaml']!.replaceAll('/etc/chatmirror', dir));
    const loaded = loadConfig({ file: join(dir, 'config.yaml'), env: {} });
    expect(loaded.quotas).toMatchObject({
      store: 'redis',
      redisUrl: 'redis://chatmirror-prod-redis:6379/0',
      redisPasswordFile: join(dir, 'secrets/redis-password'),
      redisPassword: QUOTA_STORE_PASSWORD,
      default: { requestsPerMinute: 60, tokensPerMinute: 40000, concurrentRequests: 4 },
    });
    const replica = replicasOf(prod, 'prod')[0]!;
    expect(replica.inputs.mounts).toContainEqual({
      type: 'bind',
      source: expect.stringMatching(/\/service$/),
      target: '/etc/chatmirror',
      readOnly: true,
    });
    // The balancer's X-Forwarded-For names the client (it comes from the private network only).
    expect(loaded.network.trustedProxies).toEqual(['172.29.0.0/24']);
  });

  it('refuses more than one replica without a quota store password, naming the key', async () => {
    const options = await stackPlanOptions('prod');
    const { 'chatmirror:quotaStorePassword': _, ...config } = options.config;
    await expect(planStack({ ...options, config })).rejects.toThrow(
      'chatmirror:quotaStorePassword: is required when chatmirror:serving.replicas is above 1',
    );
    await expect(
      planStack({ ...options, config: { ...options.config, 'chatmirror:quotaStorePassword': 'short' } }),
    ).rejects.toThrow('chatmirror:quotaStorePassword:');
  });
});

describe('local: one replica, no balancer', () => {
  it('publishes its port itself under a fixed name, replaced delete-first, counting quotas in memory', () => {
    const [only, ...rest] = replicasOf(local, 'local');
    expect(rest).toEqual([]);
    expect(only!.inputs.name).toBe('chatmirror-local-0');
    expect(only!.inputs.ports).toEqual([
      { internal: 8443, external: 8443, ip: '127.0.0.1', protocol: 'tcp' },
    ]);
    expect(only!.options.deleteBeforeReplace).toBe(true);
    expect(local.resources.some((r) => /balancer|redis/.test(r.name))).toBe(false);
    expect(decodeStdin(find(local, 'service-files-write'))['config.yaml']).toContain('store: memory');
  });
});

describe('the rendered files, checked by the real programs', () => {
  it.skipIf(SKIP_HAPROXY)('haproxy -c accepts the balancer config with its certificate and CA', () => {
    const files = decodeStdin(find(prod, 'balancer-files-write'));
    expect(find(prod, 'balancer-files-write').secretPaths).toContain('stdin');
    const dir = mkdtempSync(join(tmpdir(), 'chatmirror-haproxy-'));
    writeFileSync(join(dir, 'server.pem'), files['tls/server.pem']!);
    writeFileSync(join(dir, 'ca.crt'), files['tls/ca.crt']!);
    const cfg = files['haproxy.cfg']!.replaceAll('/etc/haproxy/stack/tls', dir);
    expect(cfg).toContain('server-template replica 1-4 chatmirror:8443');
    expect(cfg).toContain('retry-on conn-failure empty-response 503');
    writeFileSync(join(dir, 'haproxy.cfg'), cfg);
    const check = spawnSync('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
    expect(`${check.stdout}${check.stderr}`).toContain('Configuration file is valid');
    expect(`${check.stdout}${check.stderr}`).not.toMatch(/\[WARNING\]|\[ALERT\]/);
    expect(check.status).toBe(0);
  });

  describe.skipIf(SKIP_REDIS)('redis-server with the rendered redis.conf', () => {
    let server: ChildProcess | undefined;
    let port = 0;
    beforeAll(async () => {
      const conf = decodeStdin(find(prod, 'quota-store-files-write'))['redis.conf']!;
      const dir = mkdtempSync(join(tmpdir(), 'chatmirror-redis-'));
      // The rendered file as is, but for where it listens and writes: this machine's loopback and a tmpdir (Redis
      // enters `dir` while it parses, so that line is moved in the file; the rest comes as overrides).
      expect(conf).toMatch(/^dir \/data$/m);
      writeFileSync(join(dir, 'redis.conf'), conf.replace(/^dir \/data$/m, `dir ${dir}`));
      port = await freePort();
      server = spawn(
        'redis-server',
        [join(dir, 'redis.conf'), '--bind', '127.0.0.1', '--port', String(port)],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      await new Promise<void>((resolve, reject) => {
        let output = '';
        const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes('Ready to accept connections')) {
            clearTimeout(timer);
            resolve();
          }
        };
        server!.stdout!.on('data', onData);
        server!.stderr!.on('data', onData);
        server!.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)));
      });
    });
    afterAll(() => {
      server?.kill('SIGTERM');
    });

    it('refuses clients without the password and serves the service with the URL and password file it was given', async () => {
      const ping = (args: string[]) =>
        spawnSync(
          'redis-cli',
          ['--no-auth-warning', '-h', '127.0.0.1', '-p', String(port), ...args, 'ping'],
          {
            encoding: 'utf8',
          },
        ).stdout.trim();
      expect(ping([])).toMatch(/^NOAUTH/);
      expect(ping(['-a', QUOTA_STORE_PASSWORD])).toBe('PONG');
      // The service's own client, with the redisUrl from the rendered service config (host moved to loopback)
      // and the password from the rendered password file.
      const rendered = decodeStdin(find(prod, 'service-files-write'));
      const url = /redisUrl: (\S+)/
        .exec(rendered['config.yaml']!)![1]!
        .replace('chatmirror-prod-redis:6379', `127.0.0.1:${port}`);
      await expect(RedisStore.connect(url, { onError: () => {} })).rejects.toThrow();
      const store = await RedisStore.connect(url, {
        password: rendered['secrets/redis-password']!.trimEnd(),
      });
      try {
        const result = await store.consume([{ key: 'rpm:qa', limit: 2, windowMs: 60_000, cost: 1 }]);
        expect(result.allowed).toBe(true);
      } finally {
        await store.close();
      }
    });
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}
