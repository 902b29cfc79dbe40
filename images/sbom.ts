/**
 * The image's SBOM, CycloneDX 1.5: npm's own SBOM of the project narrowed to the production dependencies (what the
 * image's node_modules holds; `npm sbom --omit=dev` does not narrow a lockfile-only SBOM), plus what the base
 * image contributes: its Debian packages and the Node.js runtime. The image itself, by digest, is the subject.
 */

/** The parts of a CycloneDX component this module reads or writes. */
export interface CdxComponent {
  'bom-ref'?: string;
  type: string;
  name: string;
  version?: string;
  purl?: string;
  [key: string]: unknown;
}

export interface CdxBom {
  bomFormat: 'CycloneDX';
  specVersion: string;
  metadata: {
    timestamp?: string;
    lifecycles?: { phase: string }[];
    tools?: unknown;
    component?: CdxComponent;
    [key: string]: unknown;
  };
  components: CdxComponent[];
  dependencies?: { ref: string; dependsOn?: string[] }[];
  [key: string]: unknown;
}

/** The parts of package-lock.json (v2/v3) this module reads. */
export interface Lockfile {
  packages: Record<string, { name?: string; version?: string; dev?: boolean; optional?: boolean }>;
}

export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
}

export interface ImageSbomInput {
  /** `npm sbom --sbom-format cyclonedx --package-lock-only` output. */
  npmSbom: CdxBom;
  lockfile: Lockfile;
  /** `dpkg-query -W` in the image (see parseDpkgQuery). */
  debPackages: DebPackage[];
  /** Debian release of the base, e.g. `12.11`, from /etc/debian_version. */
  debianVersion: string;
  /** `node --version` in the image, without the v. */
  nodeVersion: string;
  image: { repository: string; tag: string; digest: string };
  timestamp?: string;
}

/** `name@version` of every package the lockfile installs outside devDependencies. */
export function productionPackages(lockfile: Lockfile): Set<string> {
  const names = new Set<string>();
  for (const [path, entry] of Object.entries(lockfile.packages)) {
    if (path === '' || entry.dev === true) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    names.add(`${name}@${entry.version}`);
  }
  return names;
}

/** Lines of `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'`. */
export function parseDpkgQuery(text: string): DebPackage[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [name, version, architecture] = line.split('\t');
      if (!name || !version || !architecture)
        throw new Error(`not a dpkg-query line: ${JSON.stringify(line)}`);
      return { name, version, architecture };
    });
}

export function imageSbom(input: ImageSbomInput): CdxBom {
  const production = productionPackages(input.lockfile);
  const npmComponents = input.npmSbom.components.filter((c) => production.has(`${c.name}@${c.version}`));
  const kept = new Set(npmComponents.map((c) => c['bom-ref']));
  const app = input.npmSbom.metadata.component;
  if (app?.['bom-ref'] !== undefined) kept.add(app['bom-ref']);

  const debComponents = debComponentsOf(input.debPackages, input.debianVersion);
  const os = osComponent(input.debianVersion);
  const node = nodeComponent(input.nodeVersion);
  const subject = imageSubject(input.image);

  return {
    ...input.npmSbom,
    metadata: {
      ...input.npmSbom.metadata,
      timestamp: input.timestamp ?? new Date().toISOString(),
      lifecycles: [{ phase: 'post-build' }],
      component: subject,
    },
    components: [
      // npm names the root after its directory; the lockfile has the package's own name.
      ...(app === undefined
        ? []
        : [{ ...app, type: 'application', name: input.lockfile.packages['']?.name ?? app.name }]),
      ...npmComponents,
      node,
      os,
      ...debComponents,
    ],
    dependencies: [
      {
        ref: subject['bom-ref']!,
        dependsOn: [
          ...(app?.['bom-ref'] === undefined ? [] : [app['bom-ref']]),
          node['bom-ref']!,
          os['bom-ref']!,
        ],
      },
      { ref: os['bom-ref']!, dependsOn: debComponents.map((c) => c['bom-ref']!) },
      ...(input.npmSbom.dependencies ?? [])
        .filter((d) => kept.has(d.ref))
        .map((d) => ({ ref: d.ref, dependsOn: (d.dependsOn ?? []).filter((r) => kept.has(r)) })),
    ],
  };
}

function debComponentsOf(packages: DebPackage[], debianVersion: string): CdxComponent[] {
  const debianMajor = debianVersion.split('.')[0];
  return packages.map((p) => ({
    'bom-ref': `deb:${p.name}@${p.version}`,
    type: 'library',
    name: p.name,
    version: p.version,
    purl: `pkg:deb/debian/${p.name}@${encodeURIComponent(p.version)}?arch=${p.architecture}&distro=debian-${debianMajor}`,
  }));
}

function osComponent(debianVersion: string): CdxComponent {
  return {
    'bom-ref': `os:debian@${debianVersion}`,
    type: 'operating-system',
    name: 'debian',
    version: debianVersion,
  };
}

function nodeComponent(nodeVersion: string): CdxComponent {
  return {
    'bom-ref': `runtime:node@${nodeVersion}`,
    type: 'platform',
    name: 'node',
    version: nodeVersion,
    purl: `pkg:generic/node@${nodeVersion}?download_url=https://nodejs.org/dist/v${nodeVersion}/`,
  };
}

function imageSubject(image: ImageSbomInput['image']): CdxComponent {
  const { repository, tag, digest } = image;
  const name = repository.slice(repository.lastIndexOf('/') + 1);
  return {
    'bom-ref': `image:${repository}@${digest}`,
    type: 'container',
    name: repository,
    version: tag,
    purl: `pkg:oci/${name}@${encodeURIComponent(digest)}?repository_url=${repository}&tag=${tag}`,
    hashes: [{ alg: 'SHA-256', content: digest.slice('sha256:'.length) }],
  };
}

export interface PackagedImageSbomInput {
  /** `dpkg-query -W` in the image: every Debian package, the base's included. */
  debPackages: DebPackage[];
  debianVersion: string;
  /** Node.js from the base image, which these images carry too. */
  nodeVersion: string;
  image: { repository: string; tag: string; digest: string };
  timestamp?: string;
}

/**
 * The SBOM of an image made of Debian packages on the base (images/<name>/Dockerfile): every Debian package in it
 * and the base's Node.js, the image by digest as the subject. No npm part: these images hold no npm packages
 * beyond the npm that ships with Node.js in the base.
 */
export function packagedImageSbom(input: PackagedImageSbomInput): CdxBom {
  const debComponents = debComponentsOf(input.debPackages, input.debianVersion);
  const os = osComponent(input.debianVersion);
  const node = nodeComponent(input.nodeVersion);
  const subject = imageSubject(input.image);
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: {
      timestamp: input.timestamp ?? new Date().toISOString(),
      lifecycles: [{ phase: 'post-build' }],
      tools: { components: [{ type: 'application', name: 'chatmirror images/record.ts' }] },
      component: subject,
    },
    components: [node, os, ...debComponents],
    dependencies: [
      { ref: subject['bom-ref']!, dependsOn: [node['bom-ref']!, os['bom-ref']!] },
      { ref: os['bom-ref']!, dependsOn: debComponents.map((c) => c['bom-ref']!) },
    ],
  };
}
