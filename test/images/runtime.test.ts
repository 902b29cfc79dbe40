/**
 * The service image, pulled by digest from the local registry and run the way production runs it: read-only root
 * with a tmpfs, no capabilities, no new privileges, memory and pids limits, a non-root uid, the port published on
 * 127.0.0.1 only, model, certificate, key and JWKS mounted read-only. Measures image size and cold start (container
 * start → /ready 200) and prints both. Needs CHATMIRROR_IMAGE_TESTS (see docker.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DigestsFile, digestsFilePath, readDigests } from '../../images/digests.js';
import type { CdxBom } from '../../images/sbom.js';
import type { CheckReport } from '../../service/check.js';
import { generateSigningKey, mintToken, writeKeySet } from '../../service/security/auth/keys.js';
import { ensureDevCertificate } from '../../service/tls/dev-cert.js';
import { TINY_MODEL_DIR } from '../helpers/model.js';
import {
  checkArgs,
  docker,
  dockerFails,
  httpsRequest,
  IMAGE_TESTS,
  inspect,
  SKIPPED,
  waitFor,
} from './docker.js';

const SERVICE_UID = 10001; // the image's USER
const ISSUER = 'chatmirror-image-test';
const AUDIENCE = 'chatmirror';
const TMPFS = '/tmp:rw,nosuid,nodev,noexec,size=16m';
const HARDENED = [
  '--read-only',
  '--tmpfs',
  TMPFS,
  '--cap-drop',
  'ALL',
  '--security-opt',
  'no-new-privileges',
  '--memory',
  '512m',
  '--pids-limit',
  '128',
];
const MAX_IMAGE_BYTES = 600e6; // 600 MB: the base is ~185 MB, node_modules the rest
const MAX_COLD_START_MS = 30_000;

const root = mkdtempSync(join(tmpdir(), 'chatmirror-image-'));
const containers: string[] = [];
afterAll(async () => {
  await Promise.all(containers.map((name) => docker(['rm', '--force', name]).catch(() => undefined)));
  rmSync(root, { recursive: true, force: true });
});

/** A key file the service user can read: owned by it when we may chown (root), else world-readable (test key). */
function readableByService(file: string): void {
  try {
    chownSync(file, SERVICE_UID, SERVICE_UID);
  } catch {
    chmodSync(file, 0o644);
  }
}

async function hostPort(name: string): Promise<{ hostIp: string; port: number }[]> {
  const ports = await inspect<Record<string, { HostIp: string; HostPort: string }[] | null>>(
    name,
    '.NetworkSettings.Ports',
  );
  return (ports['8443/tcp'] ?? []).map((p) => ({ hostIp: p.HostIp, port: Number(p.HostPort) }));
}

async function waitHealthy(name: string): Promise<void> {
  await waitFor(`${name} healthy`, 60_000, async () => {
    const health = await inspect<{ Status: string; Log: { Output: string }[] }>(name, '.State.Health');
    if (health.Status === 'unhealthy') throw new Error(`unhealthy: ${health.Log.at(-1)?.Output}`);
    return health.Status === 'healthy' ? true : undefined;
  });
}

function chat(baseUrl: string, ca: string | Buffer, token?: string) {
  return httpsRequest(`${baseUrl}/v1/chat/completions`, {
    ca,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    body: {
      model: 'tiny-llama',
      messages: [{ role: 'user', content: 'Continue: In the beginning' }],
      max_tokens: 8,
    },
  });
}

describe.skipIf(!IMAGE_TESTS)(`service image, production settings${SKIPPED}`, () => {
  let digests: DigestsFile;
  let name: string;
  let baseUrl: string;
  let cert: { certFile: string; keyFile: string };
  let privateJwk: Awaited<ReturnType<typeof generateSigningKey>>['privateJwk'];
  let coldStartMs: number;

  beforeAll(async () => {
    digests = await readDigests();
    cert = await ensureDevCertificate(join(root, 'tls'));
    readableByService(cert.keyFile);
    const key = await generateSigningKey({ alg: 'EdDSA' });
    privateJwk = key.privateJwk;
    const { jwksFile } = await writeKeySet(join(root, 'keys'), key);

    name = `chatmirror-test-${randomBytes(4).toString('hex')}`;
    containers.push(name);
    const started = performance.now();
    await docker([
      'run',
      '--detach',
      '--name',
      name,
      ...HARDENED,
      '--publish',
      '127.0.0.1::8443',
      '--volume',
      `${TINY_MODEL_DIR}:/models/tiny-llama:ro`,
      '--volume',
      `${cert.certFile}:/run/chatmirror/tls/cert.pem:ro`,
      '--volume',
      `${cert.keyFile}:/run/chatmirror/tls/key.pem:ro`,
      '--volume',
      `${jwksFile}:/run/chatmirror/jwks.json:ro`,
      '--env',
      'CHATMIRROR_ENGINE_MODEL_DIR=/models/tiny-llama',
      '--env',
      'CHATMIRROR_SERVER_TLS_CERT_FILE=/run/chatmirror/tls/cert.pem',
      '--env',
      'CHATMIRROR_SERVER_TLS_KEY_FILE=/run/chatmirror/tls/key.pem',
      '--env',
      `CHATMIRROR_AUTH_JWT_ISSUER=${ISSUER}`,
      '--env',
      `CHATMIRROR_AUTH_JWT_AUDIENCE=${AUDIENCE}`,
      '--env',
      'CHATMIRROR_AUTH_JWT_JWKS_FILE=/run/chatmirror/jwks.json',
      digests.images.service.reference,
      'serve',
    ]);
    const [published] = await hostPort(name);
    baseUrl = `https://127.0.0.1:${published!.port}`;
    const ca = readFileSync(cert.certFile);
    await waitFor('/ready 200', MAX_COLD_START_MS, async () => {
      const { status } = await httpsRequest(`${baseUrl}/ready`, { ca });
      return status === 200 ? true : undefined;
    }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await docker(['logs', '--tail', '30', name]).catch(() => '')}`);
    });
    coldStartMs = performance.now() - started;
  }, 90_000);

  it('publishes the API on 127.0.0.1 only', async () => {
    const published = await hostPort(name);
    expect(published.length).toBeGreaterThan(0);
    for (const { hostIp } of published) expect(hostIp).toBe('127.0.0.1');
  });

  it('runs as uid 10001 with no capabilities, no new privileges, a read-only root and limits', async () => {
    const host = await inspect<{
      ReadonlyRootfs: boolean;
      CapDrop: string[];
      SecurityOpt: string[];
      Memory: number;
      PidsLimit: number;
      Tmpfs: Record<string, string>;
    }>(name, '.HostConfig');
    expect(host).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: 512 * 1024 * 1024,
      PidsLimit: 128,
    });
    expect(await inspect<string>(name, '.Config.User')).toBe('10001:10001');
    // What the kernel says about the server process itself.
    const status = await docker(['exec', name, 'cat', '/proc/1/status']);
    expect(status).toMatch(/^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    expect(status).toMatch(/^CapEff:\s+0{16}$/m);
    expect(status).toMatch(/^CapBnd:\s+0{16}$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(await docker(['exec', name, 'cat', '/proc/1/mounts'])).toMatch(/^overlay \/ overlay ro,/m);
    // Even root in the container, owner of the app's files, cannot change them.
    const write = await dockerFails(['exec', '--user', '0', name, 'touch', '/app/service/cli.js']);
    expect(write.output).toMatch(/Read-only file system/);
    // Nothing was written outside the tmpfs: the only changes are the mount points Docker made for the volumes.
    const mounts = (await inspect<{ Destination: string }[]>(name, '.Mounts')).map((m) => m.Destination);
    const changed = (await docker(['diff', name])).split('\n').map((line) => line.slice(2));
    for (const path of changed)
      expect(
        mounts.some((m) => m === path || m.startsWith(`${path}/`)),
        path,
      ).toBe(true);
  });

  it('turns healthy (HEALTHCHECK probes /health, pinning the configured certificate)', async () => {
    await waitHealthy(name);
  }, 70_000);

  it('answers an HTTPS chat completion with a minted token, from the host, and refuses one without', async () => {
    const ca = readFileSync(cert.certFile);
    const token = await mintToken({
      privateJwk,
      issuer: ISSUER,
      audience: AUDIENCE,
      subject: 'image-test',
      scopes: ['chat'],
      ttlSeconds: 300,
    });
    const ok = await chat(baseUrl, ca, token);
    expect(ok.status, ok.body).toBe(200);
    const completion = JSON.parse(ok.body);
    expect(completion).toMatchObject({ object: 'chat.completion', model: 'tiny-llama' });
    expect(typeof completion.choices[0].message.content).toBe('string');
    expect(completion.usage.completion_tokens).toBeGreaterThan(0);

    const refused = await chat(baseUrl, ca);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error.code).toBe('invalid_api_key');
  });

  it('is small and starts fast (printed for the record)', async () => {
    const size = Number(
      await docker(['image', 'inspect', '--format', '{{.Size}}', digests.images.service.reference]),
    );
    process.stdout.write(
      `\n  image ${digests.images.service.reference}\n` +
        `    size ${(size / 1e6).toFixed(0)} MB (base ${(digests.images.base.sizeBytes / 1e6).toFixed(0)} MB); ` +
        `cold start to /ready ${coldStartMs.toFixed(0)} ms\n`,
    );
    expect(size).toBeLessThan(MAX_IMAGE_BYTES);
    expect(coldStartMs).toBeLessThan(MAX_COLD_START_MS);
  });
});

describe.skipIf(!IMAGE_TESTS)(`service image, demo defaults${SKIPPED}`, () => {
  let digests: DigestsFile;
  beforeAll(async () => {
    digests = await readDigests();
  });

  it('serves the bundled model with its development certificate and token under --read-only', async () => {
    const name = `chatmirror-demo-${randomBytes(4).toString('hex')}`;
    containers.push(name);
    await docker([
      'run',
      '--detach',
      '--name',
      name,
      ...HARDENED,
      '--publish',
      '127.0.0.1::8443',
      digests.images.service.reference,
    ]);
    const logs = await waitFor('the development token in the logs', 30_000, async () => {
      const text = await docker(['logs', name], { withStderr: true });
      return /export CHATMIRROR_TOKEN=/.test(text) ? text : undefined;
    });
    const token = /export CHATMIRROR_TOKEN=(\S+)/.exec(logs)![1]!;
    // ORT_DISABLE_TELEMETRY=1: onnxruntime's telemetry (which logs its start-up) never initialises.
    expect(logs).not.toMatch(/telemetry/i);
    // The image carries chatmirror's onnxruntime binding (built in its build stage), and auto picks it.
    expect(logs).toMatch(/"runtime":"native"/);
    // The certificate was generated in the container's tmpfs; trust exactly that one.
    const ca = await docker(['exec', name, 'cat', '/tmp/chatmirror/dev-tls/cert.pem']);
    const [published] = await hostPort(name);
    const reply = await chat(`https://127.0.0.1:${published!.port}`, ca, token);
    expect(reply.status, reply.body).toBe(200);
    await waitHealthy(name);
  }, 90_000);

  it('runs `check` in the image: passes with a tmpfs, fails on a read-only cache and on too little memory', async () => {
    const image = digests.images.service.reference;
    const passed = JSON.parse(
      await docker(['run', '--rm', '--network', 'none', ...HARDENED, ...checkArgs(image, ['--json'])]),
    ) as CheckReport;
    expect(passed.ok).toBe(true);
    expect(passed.system).toMatchObject({ memoryBytes: 512 * 1024 * 1024, memorySource: 'cgroup limit' });

    const noTmpfs = await dockerFails([
      'run',
      '--rm',
      '--network',
      'none',
      '--read-only',
      '--cap-drop',
      'ALL',
      ...checkArgs(image, []),
    ]);
    expect(noTmpfs.code).toBe(1);
    expect(noTmpfs.output).toMatch(
      /FAIL {2}cache .*read-only filesystem.*point CHATMIRROR_CACHE at a writable directory/,
    );

    const small = await dockerFails([
      'run',
      '--rm',
      '--network',
      'none',
      ...HARDENED.map((arg) => (arg === '512m' ? '128m' : arg)),
      ...checkArgs(image, []),
    ]);
    expect(small.code).toBe(1);
    expect(small.output).toMatch(/FAIL {2}memory .*128\.0 MiB available \(cgroup limit\)/);
  }, 60_000);

  it('has an SBOM that lists every npm package in the image', async () => {
    const walk = `
      const fs = require('node:fs'), path = require('node:path'), found = new Set();
      (function walk(dir) {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
          if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
          const pkg = path.join(dir, entry.name);
          if (entry.name.startsWith('@')) { walk(pkg); continue; }
          const { name, version } = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
          found.add(name + '@' + version);
          if (fs.existsSync(path.join(pkg, 'node_modules'))) walk(path.join(pkg, 'node_modules'));
        }
      })('/app/node_modules');
      process.stdout.write(JSON.stringify([...found]));`;
    const installed = JSON.parse(
      await docker([
        'run',
        '--rm',
        '--network',
        'none',
        '--entrypoint',
        'node',
        digests.images.service.reference,
        '-e',
        walk,
      ]),
    ) as string[];
    const sbomFile = join(dirname(digestsFilePath()), digests.images.service.sbom);
    const sbom = JSON.parse(readFileSync(sbomFile, 'utf8')) as CdxBom;
    expect(sbom.metadata.component?.hashes).toEqual([
      { alg: 'SHA-256', content: digests.images.service.digest.slice(7) },
    ]);
    const listed = new Set(
      sbom.components.filter((c) => c.purl?.startsWith('pkg:npm/')).map((c) => `${c.name}@${c.version}`),
    );
    expect(installed.length).toBeGreaterThan(50);
    expect(installed.filter((p) => !listed.has(p))).toEqual([]);
  });

  it('holds the app and nothing from the build stages (their CA bundle, C compiler, headers)', async () => {
    const listing = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      '0',
      '--entrypoint',
      'sh',
      digests.images.service.reference,
      '-c',
      'ls -A /app && find / -xdev \\( -name build-extra-ca.pem -o -name onnxruntime_go.zip -o -name node_api.h \\) ' +
        '&& command -v cc gcc; true',
    ]);
    expect(listing.split('\n').sort()).toEqual([
      'healthcheck.mjs',
      'node_modules',
      'package.json',
      'service',
      'test',
    ]);
  });
});
