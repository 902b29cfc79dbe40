/**
 * The Debian-packaged images (images/<name>/Dockerfile: prometheus, node-exporter, alertmanager, haproxy, redis).
 * Without Docker: each Dockerfile read as text (base, user, entrypoint, healthcheck, what apt installs). With
 * CHATMIRROR_IMAGE_TESTS (see docker.ts), after images/build.sh: each image pulled by repo@sha256 digest from the
 * local registry and run hardened (read-only root, no capabilities, no new privileges, its non-root uid, memory
 * and pids limits, ports on 127.0.0.1 only), doing its real job; and digests.json listing every image at a digest
 * the registry serves.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DigestsFile,
  digestsFilePath,
  PACKAGED_IMAGES,
  type PackagedImageName,
  readDigests,
} from '../../images/digests.js';
import { parseReference, pullByDigest, resolveDigest } from '../../images/registry.js';
import type { CdxBom } from '../../images/sbom.js';
import { ensureDevCertificate } from '../../service/tls/dev-cert.js';
import { TINY_MODEL_DIR } from '../helpers/model.js';
import {
  DOCKER,
  docker,
  dockerFails,
  httpsRequest,
  IMAGE_TESTS,
  inspect,
  SKIPPED,
  waitFor,
} from './docker.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** What each image is for: its user, entrypoint, and the HEALTHCHECK command the README documents. */
const EXPECTED: Record<
  PackagedImageName,
  { user: string; entrypoint: string[]; healthcheck: string[]; install: string[] }
> = {
  prometheus: {
    user: '65534:65534',
    entrypoint: ['/usr/bin/prometheus'],
    healthcheck: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9090/-/ready'],
    install: ['prometheus', 'wget'],
  },
  nodeExporter: {
    user: '65534:65534',
    entrypoint: ['/usr/bin/prometheus-node-exporter'],
    healthcheck: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9100/'],
    install: ['prometheus-node-exporter', 'wget'],
  },
  alertmanager: {
    user: '65534:65534',
    entrypoint: ['/usr/bin/prometheus-alertmanager'],
    healthcheck: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9093/-/ready'],
    install: ['prometheus-alertmanager', 'wget'],
  },
  haproxy: {
    user: '99:99',
    entrypoint: ['/usr/sbin/haproxy'],
    healthcheck: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8404/healthz'],
    install: ['haproxy', 'wget'],
  },
  redis: {
    user: '999:999',
    entrypoint: ['/usr/bin/redis-server'],
    healthcheck: [
      'CMD',
      'sh',
      '-c',
      "redis-cli --no-auth-warning -h 127.0.0.1 -p 6379 ping | grep -Eq '^(PONG|NOAUTH)'",
    ],
    install: ['redis-server'],
  },
};

/** Instructions as Docker parses them: comment lines dropped, continuation lines joined. */
function instructionsOf(dockerfile: string): string[] {
  return dockerfile
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '');
}

describe('images/<name>/Dockerfile', () => {
  for (const [key, dir] of Object.entries(PACKAGED_IMAGES) as [PackagedImageName, string][]) {
    it(`${dir}: the local base, apt without recommends, a numeric non-root user, the real binary`, () => {
      const expected = EXPECTED[key];
      const instructions = instructionsOf(read(`images/${dir}/Dockerfile`));
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ${ARG} syntax
      expect(instructions.filter((line) => line.startsWith('FROM '))).toEqual(['FROM ${BASE_IMAGE}']);
      const install = instructions.find((line) => line.includes('apt-get install'))!;
      expect(install).toContain('--no-install-recommends');
      expect(install).toContain('rm -rf /var/lib/apt/lists/*');
      // The words after `apt-get install` up to the redirection, less its options (and -o's argument).
      const words = /apt-get install ([^>&]*)/.exec(install)![1]!.trim().split(/\s+/);
      const installed = words.filter((word, i) => !word.startsWith('-') && words[i - 1] !== '-o');
      expect(installed).toEqual(expected.install);
      // What build.sh reads to record the versions must be what apt installed.
      expect(instructions.join('\n')).toContain(
        `io.chatmirror.debian.install="${expected.install.join(' ')}"`,
      );
      expect(instructions).toContain(`USER ${expected.user}`);
      expect(instructions).toContain(`ENTRYPOINT ${JSON.stringify(expected.entrypoint).replace(/,/g, ', ')}`);
      expect(instructions.some((line) => line.startsWith('HEALTHCHECK '))).toBe(true);
    });
  }

  it('images/build.sh builds every one of them', () => {
    const list = /^debian_images=\(([^)]*)\)$/m.exec(read('images/build.sh'))?.[1]?.split(' ');
    expect(new Set(list)).toEqual(new Set(Object.values(PACKAGED_IMAGES)));
  });
});

// ---- with Docker ------------------------------------------------------------------------------------------------

const TMPFS = '/tmp:rw,nosuid,nodev,noexec,size=16m';
/** A tmpfs the image's user owns (for the data directories of prometheus and alertmanager). */
const ownedTmpfs = (path: string, user: string) => {
  const [uid, gid] = user.split(':');
  return `${path}:rw,nosuid,nodev,noexec,size=64m,uid=${uid},gid=${gid}`;
};
const hardened = (memory: string, pids: number) => [
  '--read-only',
  '--tmpfs',
  TMPFS,
  '--cap-drop',
  'ALL',
  '--security-opt',
  'no-new-privileges',
  '--memory',
  memory,
  '--pids-limit',
  String(pids),
];

const root = mkdtempSync(join(tmpdir(), 'chatmirror-packaged-'));
const containers: string[] = [];
const networks: string[] = [];
afterAll(async () => {
  await Promise.all(containers.map((name) => docker(['rm', '--force', name]).catch(() => undefined)));
  await Promise.all(networks.map((name) => docker(['network', 'rm', name]).catch(() => undefined)));
  rmSync(root, { recursive: true, force: true });
});

const unique = (role: string) => `chatmirror-test-${role}-${randomBytes(4).toString('hex')}`;

/** A file the image's user can read (a test's config: world-readable). */
function writeReadable(dir: string, name: string, text: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, 0o644);
  return file;
}

/** `docker run --detach`; the image's own HEALTHCHECK command, probed every 2 s rather than its interval. */
async function start(role: string, args: string[]): Promise<string> {
  const name = unique(role);
  containers.push(name);
  await docker(['run', '--detach', '--name', name, '--health-interval', '2s', ...args]);
  return name;
}

async function publishedPort(name: string, containerPort: number): Promise<number> {
  const ports = await inspect<Record<string, { HostIp: string; HostPort: string }[] | null>>(
    name,
    '.NetworkSettings.Ports',
  );
  const bindings = ports[`${containerPort}/tcp`] ?? [];
  expect(bindings.length).toBeGreaterThan(0);
  for (const { HostIp } of bindings) expect(HostIp).toBe('127.0.0.1');
  return Number(bindings[0]!.HostPort);
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text() };
}

async function waitHttp200(what: string, url: string, name: string, timeoutMs = 30_000): Promise<string> {
  return waitFor(what, timeoutMs, async () => {
    const { status, body } = await get(url);
    return status === 200 ? body : undefined;
  }).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await docker(['logs', '--tail', '30', name], { withStderr: true })}`);
  });
}

async function waitHealthy(name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${name} healthy`, timeoutMs, async () => {
    const health = await inspect<{ Status: string; Log: { Output: string }[] }>(name, '.State.Health');
    if (health.Status === 'unhealthy') throw new Error(`unhealthy: ${health.Log.at(-1)?.Output}`);
    return health.Status === 'healthy' ? true : undefined;
  });
}

/** The container runs as `user` with no capabilities, no new privileges, a read-only root, and the limits. */
async function expectHardened(name: string, user: string, memoryBytes: number, pids: number): Promise<void> {
  const host = await inspect<{
    ReadonlyRootfs: boolean;
    CapDrop: string[];
    SecurityOpt: string[];
    Memory: number;
    PidsLimit: number;
  }>(name, '.HostConfig');
  expect(host).toMatchObject({
    ReadonlyRootfs: true,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    Memory: memoryBytes,
    PidsLimit: pids,
  });
  const [uid, gid] = user.split(':');
  // What the kernel says about the main process, not what the config asked for.
  const status = await docker(['exec', name, 'cat', '/proc/1/status']);
  expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
  expect(status).toMatch(new RegExp(`^Gid:\\s+${gid}\\s+${gid}\\s+${gid}\\s+${gid}$`, 'm'));
  expect(status).toMatch(/^CapEff:\s+0{16}$/m);
  expect(status).toMatch(/^CapBnd:\s+0{16}$/m);
  expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
  expect(await docker(['exec', name, 'cat', '/proc/1/mounts'])).toMatch(/^overlay \/ overlay ro,/m);
}

/** One response header of an HTTPS GET trusting only `ca`. */
function responseHeader(url: string, ca: Buffer, header: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    request(url, { ca, timeout: 5_000 }, (res) => {
      res.resume();
      const value = res.headers[header];
      resolve(Array.isArray(value) ? value.join(', ') : value);
    })
      .on('error', reject)
      .end();
  });
}

/** Inline Redis commands over one connection; the first line of each reply. */
function redisSession(port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const replies: string[] = [];
    let buffer = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('redis: no reply within 5 s')));
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(commands.map((c) => `${c}\r\n`).join('')));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (/^\$\d+$/.test(line)) continue; // a bulk string's length; its value is the next line
        replies.push(line);
      }
      if (replies.length >= commands.length) {
        socket.end();
        resolve(replies);
      }
    });
    socket.on('error', reject);
  });
}

describe.skipIf(!IMAGE_TESTS)(`Debian-packaged images, pulled by digest and run hardened${SKIPPED}`, () => {
  let digests: DigestsFile;
  const ref = (key: PackagedImageName) => digests.images[key].reference;

  beforeAll(async () => {
    digests = await readDigests();
    for (const key of Object.keys(PACKAGED_IMAGES) as PackagedImageName[]) {
      // Drop the local digest reference (the image stays under its tag) so the pull must ask the registry.
      await docker(['image', 'rm', ref(key)]).catch(() => undefined);
      await pullByDigest(ref(key), DOCKER);
    }
  }, 120_000);

  it('digests.json lists every image, each at a digest the registry serves, with its Debian version', async () => {
    expect(Object.keys(digests.images).sort()).toEqual(
      ['alertmanager', 'base', 'haproxy', 'nodeExporter', 'prometheus', 'redis', 'service'].sort(),
    );
    for (const image of Object.values(digests.images)) {
      const { registry, repository } = parseReference(image.reference);
      expect(image.reference).toBe(`${image.repository}@${image.digest}`);
      // By digest: the manifest is there; by tag: the tag still points at it.
      expect(await resolveDigest(registry, repository, image.digest)).toBe(image.digest);
      expect(await resolveDigest(registry, repository, image.tag)).toBe(image.digest);
    }
    for (const key of Object.keys(PACKAGED_IMAGES) as PackagedImageName[]) {
      const image = digests.images[key];
      const labels = await inspect<Record<string, string>>(image.reference, '.Config.Labels');
      const dpkg = await docker([
        'run',
        '--rm',
        '--network',
        'none',
        '--entrypoint',
        'dpkg-query',
        image.reference,
        '-W',
        '-f',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${Field} syntax
        '${Package}=${Version}\\n',
        ...EXPECTED[key].install,
      ]);
      expect(Object.fromEntries(dpkg.split('\n').map((line) => line.split('=')))).toEqual(image.installed);
      expect(image.package).toBe(EXPECTED[key].install[0]);
      expect(labels['org.opencontainers.image.version']).toBe(image.version);
      expect(image.version).toBe(image.installed[image.package]);
      for (const label of ['title', 'created', 'revision', 'source', 'base.name', 'licenses'])
        expect(labels[`org.opencontainers.image.${label}`], label).toBeTruthy();
      const config = await inspect<{ User: string; Entrypoint: string[]; Healthcheck: { Test: string[] } }>(
        image.reference,
        '.Config',
      );
      expect(config.User).toBe(EXPECTED[key].user);
      expect(config.Entrypoint).toEqual(EXPECTED[key].entrypoint);
      expect(config.Healthcheck.Test).toEqual(EXPECTED[key].healthcheck);
      // The SBOM is of this very image and lists the packages it installed.
      const sbom = JSON.parse(readFileSync(join(digestsFilePath(), '..', image.sbom), 'utf8')) as CdxBom;
      expect(sbom.metadata.component?.hashes).toEqual([{ alg: 'SHA-256', content: image.digest.slice(7) }]);
      for (const [name, version] of Object.entries(image.installed))
        expect(sbom.components).toContainEqual(expect.objectContaining({ name, version }));
    }
  }, 60_000);

  describe('prometheus', () => {
    const user = EXPECTED.prometheus.user;
    let name: string;
    let base: string;
    const dir = join(root, 'prometheus');
    const config =
      'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: [127.0.0.1:9090]\n';

    beforeAll(async () => {
      const file = writeReadable(dir, 'prometheus.yml', config);
      name = await start('prometheus', [
        ...hardened('256m', 64),
        '--tmpfs',
        ownedTmpfs('/prometheus', user),
        '--publish',
        '127.0.0.1::9090',
        '--volume',
        `${file}:/etc/prometheus/prometheus.yml:ro`,
        ref('prometheus'),
        '--config.file=/etc/prometheus/prometheus.yml',
        '--storage.tsdb.path=/prometheus',
      ]);
      base = `http://127.0.0.1:${await publishedPort(name, 9090)}`;
    });

    it('answers /-/ready, scrapes its target, and turns healthy', async () => {
      expect(await waitHttp200('prometheus /-/ready', `${base}/-/ready`, name)).toMatch(/ready/i);
      const up = await waitFor('up{job="self"} == 1', 30_000, async () => {
        const { body } = await get(`${base}/api/v1/query?query=${encodeURIComponent('up{job="self"}')}`);
        const result = JSON.parse(body).data.result as { value: [number, string] }[];
        return result[0]?.value[1] === '1' ? result : undefined;
      });
      expect(up).toHaveLength(1);
      await waitHealthy(name);
    }, 90_000);

    it('runs as 65534 with no capabilities on a read-only root, writing only its TSDB', async () => {
      await expectHardened(name, user, 256 * 1024 * 1024, 64);
      expect(await docker(['exec', name, 'ls', '/prometheus'])).toMatch(/wal/);
      const write = await dockerFails(['exec', name, 'touch', '/etc/prometheus/x']);
      expect(write.output).toMatch(/Read-only file system/);
    });

    it('carries promtool, which accepts a good config and rejects a bad one', async () => {
      const promtool = (file: string) => [
        'run',
        '--rm',
        '--network',
        'none',
        ...hardened('128m', 32),
        '--volume',
        `${file}:/etc/prometheus/prometheus.yml:ro`,
        '--entrypoint',
        '/usr/bin/promtool',
        ref('prometheus'),
        'check',
        'config',
        '/etc/prometheus/prometheus.yml',
      ];
      const good = await docker(promtool(join(dir, 'prometheus.yml')), { withStderr: true });
      expect(good).toMatch(/SUCCESS/);
      const bad = writeReadable(
        dir,
        'bad.yml',
        'scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n',
      );
      const refused = await dockerFails(promtool(bad));
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(/FAILED/);
    }, 60_000);
  });

  describe('node-exporter', () => {
    const user = EXPECTED.nodeExporter.user;
    let name: string;

    beforeAll(async () => {
      const textfile = join(root, 'textfile');
      writeReadable(textfile, 'test.prom', '# TYPE chatmirror_image_test gauge\nchatmirror_image_test 42\n');
      name = await start('node-exporter', [
        ...hardened('128m', 64),
        '--publish',
        '127.0.0.1::9100',
        '--volume',
        '/:/host:ro',
        '--volume',
        `${textfile}:/textfile:ro`,
        ref('nodeExporter'),
        '--path.rootfs=/host',
        '--collector.textfile.directory=/textfile',
      ]);
    });

    it('serves node_ metrics of the host root and the textfile collector, and turns healthy', async () => {
      const port = await publishedPort(name, 9100);
      const metrics = await waitHttp200('node-exporter /metrics', `http://127.0.0.1:${port}/metrics`, name);
      expect(metrics).toMatch(/^node_cpu_seconds_total\{/m);
      expect(metrics).toMatch(/^node_memory_MemTotal_bytes \d/m);
      expect(metrics).toMatch(/^node_filesystem_avail_bytes\{[^}]*mountpoint="\/"/m);
      expect(metrics).toMatch(/^chatmirror_image_test 42$/m);
      expect(metrics).not.toMatch(/^node_textfile_scrape_error 1$/m);
      await waitHealthy(name);
    }, 90_000);

    it('runs as 65534 with no capabilities on a read-only root, writing nothing', async () => {
      await expectHardened(name, user, 128 * 1024 * 1024, 64);
      const mounts = (await inspect<{ Destination: string }[]>(name, '.Mounts')).map((m) => m.Destination);
      const changed = (await docker(['diff', name])).split('\n').filter((l) => l !== '');
      expect(changed.map((line) => line.slice(2)).filter((p) => !mounts.includes(p))).toEqual([]);
    });
  });

  describe('alertmanager', () => {
    const user = EXPECTED.alertmanager.user;
    let name: string;
    let base: string;
    const config = 'route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n';

    beforeAll(async () => {
      const file = writeReadable(join(root, 'alertmanager'), 'alertmanager.yml', config);
      name = await start('alertmanager', [
        ...hardened('128m', 64),
        '--tmpfs',
        ownedTmpfs('/alertmanager', user),
        '--publish',
        '127.0.0.1::9093',
        '--volume',
        `${file}:/etc/prometheus/alertmanager.yml:ro`,
        ref('alertmanager'),
      ]);
      base = `http://127.0.0.1:${await publishedPort(name, 9093)}`;
    });

    it('answers /-/ready, accepts an alert and lists it, and turns healthy', async () => {
      await waitHttp200('alertmanager /-/ready', `${base}/-/ready`, name);
      const alertname = `ImageTest${randomBytes(3).toString('hex')}`;
      const posted = await fetch(`${base}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ labels: { alertname, severity: 'none' } }]),
      });
      expect(posted.status).toBe(200);
      const alerts = await waitFor('the alert listed', 10_000, async () => {
        const list = JSON.parse((await get(`${base}/api/v2/alerts`)).body) as {
          labels: { alertname: string };
        }[];
        return list.some((a) => a.labels.alertname === alertname) ? list : undefined;
      });
      expect(alerts.length).toBeGreaterThan(0);
      await waitHealthy(name);
    }, 90_000);

    it('runs as 65534 with no capabilities on a read-only root; amtool checks configs', async () => {
      await expectHardened(name, user, 128 * 1024 * 1024, 64);
      const checked = await docker(
        ['exec', name, 'amtool', 'check-config', '/etc/prometheus/alertmanager.yml'],
        { withStderr: true },
      );
      expect(checked).toMatch(/SUCCESS/);
      const bad = await dockerFails(['exec', name, 'amtool', 'check-config', '/etc/hostname']);
      expect(bad.code).not.toBe(0);
    });
  });

  describe('haproxy in front of the service, health-checking /ready over HTTPS', () => {
    const user = EXPECTED.haproxy.user;
    const dir = join(root, 'haproxy');
    let network: string;
    let backend: string;
    let proxy: string;
    let ca: Buffer;
    let url: string;

    const config = (caFile: string) => `global
    log stdout format raw local0
    maxconn 256

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    option httplog

frontend health
    bind :8404
    monitor-uri /healthz

frontend api
    bind :8443 ssl crt /etc/haproxy/tls/frontend.pem
    default_backend api

backend api
    option httpchk GET /ready
    http-check expect status 200
    http-response set-header X-Load-Balancer haproxy
    server api1 api:8443 ssl verify required ca-file ${caFile} verifyhost localhost sni str(localhost) check inter 1s fall 2 rise 1 init-addr libc,none
`;

    const validate = (file: string) => [
      'run',
      '--rm',
      '--network',
      'none',
      ...hardened('128m', 32),
      '--volume',
      `${file}:/etc/haproxy/haproxy.cfg:ro`,
      '--volume',
      `${dir}/tls:/etc/haproxy/tls:ro`,
      ref('haproxy'),
      '-c',
      '-f',
      '/etc/haproxy/haproxy.cfg',
    ];

    beforeAll(async () => {
      const cert = await ensureDevCertificate(join(dir, 'tls'));
      chmodSync(join(dir, 'tls'), 0o755);
      chmodSync(cert.certFile, 0o644);
      chmodSync(cert.keyFile, 0o644); // a throwaway test key, readable by the service's and haproxy's uids
      ca = readFileSync(cert.certFile);
      // haproxy wants the certificate and its key in one PEM file (the dev certificate ends without a newline).
      writeReadable(join(dir, 'tls'), 'frontend.pem', `${ca}\n${readFileSync(cert.keyFile, 'utf8')}`);
      writeReadable(dir, 'haproxy.cfg', config('/etc/haproxy/tls/cert.pem'));

      network = unique('net');
      networks.push(network);
      await docker(['network', 'create', network]);
      // The backend: the chatmirror service image itself, serving the dev certificate made above.
      backend = await start('haproxy-backend', [
        ...hardened('512m', 128),
        '--network',
        network,
        '--network-alias',
        'api',
        '--volume',
        `${TINY_MODEL_DIR}:/models/tiny-llama:ro`,
        '--volume',
        `${cert.certFile}:/run/chatmirror/tls/cert.pem:ro`,
        '--volume',
        `${cert.keyFile}:/run/chatmirror/tls/key.pem:ro`,
        '--env',
        'CHATMIRROR_ENGINE_MODEL_DIR=/models/tiny-llama',
        '--env',
        'CHATMIRROR_SERVER_TLS_CERT_FILE=/run/chatmirror/tls/cert.pem',
        '--env',
        'CHATMIRROR_SERVER_TLS_KEY_FILE=/run/chatmirror/tls/key.pem',
        digests.images.service.reference,
        'serve',
      ]);
      proxy = await start('haproxy', [
        ...hardened('128m', 64),
        '--network',
        network,
        '--publish',
        '127.0.0.1::8443',
        '--volume',
        `${dir}/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro`,
        '--volume',
        `${dir}/tls:/etc/haproxy/tls:ro`,
        ref('haproxy'),
      ]);
      url = `https://127.0.0.1:${await publishedPort(proxy, 8443)}`;
    }, 60_000);

    it('validates a configuration with -c, and rejects a broken one', async () => {
      const good = await docker(validate(join(dir, 'haproxy.cfg')), { withStderr: true });
      expect(good).toMatch(/Configuration file is valid/);
      const broken = writeReadable(dir, 'broken.cfg', config('/etc/haproxy/tls/missing-ca.pem'));
      const refused = await dockerFails(validate(broken));
      expect(refused.code).not.toBe(0);
      expect(refused.output).toMatch(/missing-ca\.pem/);
    }, 30_000);

    it('proxies HTTPS to the service once its /ready check passes, and turns healthy', async () => {
      const reply = await waitFor('/health through haproxy', 60_000, async () => {
        const response = await httpsRequest(`${url}/health`, { ca });
        return response.status === 200 ? response : undefined;
      }).catch(async (err: Error) => {
        const logs = await docker(['logs', '--tail', '20', proxy], { withStderr: true });
        throw new Error(`${err.message}\n${logs}`);
      });
      expect(reply.status).toBe(200);
      // The request went through haproxy (which adds the header) and haproxy logged it as sent to api1.
      expect(await responseHeader(`${url}/health`, ca, 'x-load-balancer')).toBe('haproxy');
      expect(await docker(['logs', proxy], { withStderr: true })).toMatch(/ api~? api\/api1 \S+ 200 /);
      await waitHealthy(proxy);
    }, 90_000);

    it('answers 503 once the backend fails its health check', async () => {
      await docker(['stop', '--time', '2', backend]);
      const reply = await waitFor('503 with the backend down', 20_000, async () => {
        const response = await httpsRequest(`${url}/health`, { ca });
        return response.status === 503 ? response : undefined;
      });
      expect(reply.status).toBe(503);
    }, 30_000);

    it('runs as 99 with no capabilities on a read-only root', async () => {
      await expectHardened(proxy, user, 128 * 1024 * 1024, 64);
    });
  });

  describe('redis', () => {
    const user = EXPECTED.redis.user;
    const password = randomBytes(18).toString('base64url');
    let name: string;
    let port: number;

    beforeAll(async () => {
      // The password reaches redis as a config file (a secret), never on the command line.
      const file = writeReadable(join(root, 'redis'), 'redis-auth.conf', `requirepass ${password}\n`);
      name = await start('redis', [
        ...hardened('128m', 64),
        '--publish',
        '127.0.0.1::6379',
        '--volume',
        `${file}:/run/secrets/redis-auth.conf:ro`,
        ref('redis'),
        '/etc/redis/redis.conf',
        '--include',
        '/run/secrets/redis-auth.conf',
      ]);
      port = await publishedPort(name, 6379);
    });

    it('refuses commands without the password and answers PING with it', async () => {
      const replies = await waitFor('redis answering', 20_000, () =>
        redisSession(port, [
          'PING',
          'AUTH wrong-password',
          `AUTH ${password}`,
          'PING',
          'INCR image-test',
          'GET image-test',
        ]),
      );
      expect(replies[0]).toMatch(/^-NOAUTH/);
      expect(replies[1]).toMatch(/^-WRONGPASS/);
      expect(replies.slice(2)).toEqual(['+OK', '+PONG', ':1', '1']);
      expect(await docker(['inspect', '--format', '{{json .Args}}', name])).not.toContain(password);
      await waitHealthy(name);
    }, 60_000);

    it('runs as 999 with no capabilities on a read-only root, writing nothing', async () => {
      await expectHardened(name, user, 128 * 1024 * 1024, 64);
      const mounts = (await inspect<{ Destination: string }[]>(name, '.Mounts')).map((m) => m.Destination);
      const changed = (await docker(['diff', name])).split('\n').filter((l) => l !== '');
      expect(
        changed.map((line) => line.slice(2)).filter((p) => !mounts.some((m) => m.startsWith(p))),
      ).toEqual([]);
    });
  });
});
