/**
 * Last step of images/build.sh, once every image is pushed: asks the registry for their digests, writes
 * images/digests.json, and writes each image's SBOM beside it (the service's to --sbom, each Debian-packaged
 * image's to sbom-<dir>.cdx.json next to it).
 *
 *   tsx images/record.ts --registry 127.0.0.1:5000 --service chatmirror/service:0.1.0 \
 *     --base chatmirror/base:<key> --revision <git sha> --image prometheus=chatmirror/prometheus:<tag> … \
 *     --out images/digests.json --sbom images/sbom.cdx.json
 *
 * Every image of PACKAGED_IMAGES must be given with --image <dir>=<local image>: digests.json lists them all or
 * is not written.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import {
  PACKAGED_IMAGES,
  type PackagedImage,
  type PackagedImageName,
  type PublishedImage,
  writeDigests,
} from './digests.js';
import { resolveDigest } from './registry.js';
import { type CdxBom, imageSbom, type Lockfile, packagedImageSbom, parseDpkgQuery } from './sbom.js';

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

/**
 * A Debian-packaged image: its digest, what images/build.sh labelled it with (the main package's version, every
 * installed package's version, the revision), and its SBOM from dpkg-query in the pushed image.
 */
async function packaged(
  registry: string,
  local: string,
  sbomFile: string,
  out: string,
): Promise<PackagedImage> {
  const image = await published(registry, local);
  const labels = JSON.parse(
    await dockerOut(['image', 'inspect', '--format', '{{json .Config.Labels}}', image.reference]),
  ) as Record<string, string> | null;
  const label = (key: string): string => {
    const value = labels?.[key];
    if (!value) throw new Error(`${local} has no ${key} label; was it built by images/build.sh?`);
    return value;
  };
  const install = label('io.chatmirror.debian.install').split(' ');
  const [dpkg, debianVersion, nodeVersion] = await Promise.all([
    inImage(image.reference, 'dpkg-query', ['-W', '-f', DPKG_FORMAT]),
    inImage(image.reference, 'cat', ['/etc/debian_version']),
    inImage(image.reference, 'node', ['-p', 'process.versions.node']),
  ]);
  const debPackages = parseDpkgQuery(dpkg);
  const versions = new Map(debPackages.map((p) => [p.name, p.version]));
  const installed: Record<string, string> = {};
  for (const name of install) {
    const version = versions.get(name);
    if (version === undefined)
      throw new Error(`${local}: ${name} is labelled as installed but dpkg lists no ${name}`);
    installed[name] = version;
  }
  const main = install[0]!;
  // The label was set from dpkg-query in the unlabelled image; the pushed image must say the same.
  if (label('org.opencontainers.image.version') !== installed[main]) {
    throw new Error(
      `${local}: labelled version ${label('org.opencontainers.image.version')}, but dpkg has ${main} ${installed[main]}`,
    );
  }
  const sbom = packagedImageSbom({
    debPackages,
    debianVersion: debianVersion.trim(),
    nodeVersion: nodeVersion.trim(),
    image: { repository: image.repository, tag: image.tag, digest: image.digest },
  });
  await writeFile(sbomFile, `${JSON.stringify(sbom, null, 2)}\n`);
  return {
    ...image,
    package: main,
    version: installed[main]!,
    installed,
    revision: label('org.opencontainers.image.revision'),
    sbom: relative(dirname(out), sbomFile),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      registry: { type: 'string' },
      service: { type: 'string' },
      base: { type: 'string' },
      revision: { type: 'string', default: 'unknown' },
      image: { type: 'string', multiple: true, default: [] },
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

  const given = new Map<string, string>();
  for (const arg of values.image ?? []) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new Error(`--image ${arg}: expected <dir>=<local image>`);
    given.set(arg.slice(0, eq), arg.slice(eq + 1));
  }
  const known = new Set<string>(Object.values(PACKAGED_IMAGES));
  for (const dir of given.keys())
    if (!known.has(dir)) throw new Error(`--image ${dir}: not one of ${[...known].join(', ')}`);
  const packagedImages = {} as Record<PackagedImageName, PackagedImage>;
  for (const [key, dir] of Object.entries(PACKAGED_IMAGES) as [PackagedImageName, string][]) {
    const local = given.get(dir);
    if (local === undefined) throw new Error(`--image ${dir}=<local image> is required`);
    packagedImages[key] = await packaged(registry, local, resolve(dirname(out), `sbom-${dir}.cdx.json`), out);
  }

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
      ...packagedImages,
    },
  });
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
  process.stdout.write(
    `service ${service.reference} (${mb(service.sizeBytes)})\n` +
      `base    ${base.reference} (${mb(base.sizeBytes)})\n` +
      Object.entries(packagedImages)
        .map(
          ([key, image]) =>
            `${key.padEnd(12)} ${image.reference} (${image.package} ${image.version}, ${mb(image.sizeBytes)})\n`,
        )
        .join('') +
      `wrote ${out} and ${sbomFile} (${sbom.components.length} components)\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`images/record.ts: ${err.message}\n`);
  process.exitCode = 1;
});
