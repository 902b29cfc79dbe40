/**
 * Last step of images/build.sh, once both images are pushed: asks the registry for their digests, writes
 * images/digests.json, and writes the service image's SBOM beside it.
 *
 *   tsx images/record.ts --registry 127.0.0.1:5000 --service chatmirror/service:0.1.0 \
 *     --base chatmirror/base:<key> --revision <git sha> --out images/digests.json --sbom images/sbom.cdx.json
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { type PublishedImage, writeDigests } from './digests.js';
import { resolveDigest } from './registry.js';
import { type CdxBom, imageSbom, type Lockfile, parseDpkgQuery } from './sbom.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const docker = process.env.DOCKER || 'docker';
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${Field} syntax, not a template
const DPKG_FORMAT = '${Package}\\t${Version}\\t${Architecture}\\n';

async function dockerOut(args: string[]): Promise<string> {
  const { stdout } = await run(docker, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** `docker run` of a one-off command in the image: no network, nothing writable, gone afterwards. */
function inImage(image: string, entrypoint: string, args: string[]): Promise<string> {
  return dockerOut([
    'run',
    '--rm',
    '--network',
    'none',
    '--read-only',
    '--entrypoint',
    entrypoint,
    image,
    ...args,
  ]);
}

async function published(registry: string, local: string): Promise<PublishedImage> {
  const colon = local.lastIndexOf(':');
  const name = local.slice(0, colon);
  const tag = local.slice(colon + 1);
  const digest = await resolveDigest(registry, name, tag);
  if (digest === undefined) throw new Error(`${registry}/${local} is not in the registry; was it pushed?`);
  const size = Number(await dockerOut(['image', 'inspect', '--format', '{{.Size}}', local]));
  const repository = `${registry}/${name}`;
  return { repository, tag, digest, reference: `${repository}@${digest}`, sizeBytes: size };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      registry: { type: 'string' },
      service: { type: 'string' },
      base: { type: 'string' },
      revision: { type: 'string', default: 'unknown' },
      out: { type: 'string' },
      sbom: { type: 'string' },
    },
    strict: true,
  });
  for (const name of ['registry', 'service', 'base', 'out', 'sbom'] as const) {
    if (values[name] === undefined) throw new Error(`--${name} is required`);
  }
  const registry = values.registry!;
  const out = resolve(values.out!);
  const sbomFile = resolve(values.sbom!);

  const service = await published(registry, values.service!);
  const base = await published(registry, values.base!);

  const [npmSbom, lockfile, dpkg, debianVersion, nodeVersion] = await Promise.all([
    run('npm', ['sbom', '--sbom-format', 'cyclonedx', '--package-lock-only'], {
      cwd: REPO_ROOT,
      maxBuffer: 64 * 1024 * 1024,
    }).then(({ stdout }) => JSON.parse(stdout) as CdxBom),
    readFile(resolve(REPO_ROOT, 'package-lock.json'), 'utf8').then((t) => JSON.parse(t) as Lockfile),
    inImage(service.reference, 'dpkg-query', ['-W', '-f', DPKG_FORMAT]),
    inImage(service.reference, 'cat', ['/etc/debian_version']),
    inImage(service.reference, 'node', ['-p', 'process.versions.node']),
  ]);
  const sbom = imageSbom({
    npmSbom,
    lockfile,
    debPackages: parseDpkgQuery(dpkg),
    debianVersion: debianVersion.trim(),
    nodeVersion: nodeVersion.trim(),
    image: { repository: service.repository, tag: service.tag, digest: service.digest },
  });
  await writeFile(sbomFile, `${JSON.stringify(sbom, null, 2)}\n`);

  const version = JSON.parse(await readFile(resolve(REPO_ROOT, 'package.json'), 'utf8')).version as string;
  await writeDigests(out, {
    schemaVersion: 1,
    registry,
    createdAt: new Date().toISOString(),
    images: {
      service: { ...service, version, revision: values.revision!, sbom: relative(dirname(out), sbomFile) },
      base,
    },
  });
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
  process.stdout.write(
    `service ${service.reference} (${mb(service.sizeBytes)})\n` +
      `base    ${base.reference} (${mb(base.sizeBytes)})\n` +
      `wrote ${out} and ${sbomFile} (${sbom.components.length} components)\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`images/record.ts: ${err.message}\n`);
  process.exitCode = 1;
});
