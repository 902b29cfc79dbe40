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

  const debianMajor = input.debianVersion.split('.')[0];
  const debComponents: CdxComponent[] = input.debPackages.map((p) => ({
    'bom-ref': `deb:${p.name}@${p.version}`,
    type: 'library',
    name: p.name,
    version: p.version,
    purl: `pkg:deb/debian/${p.name}@${encodeURIComponent(p.version)}?arch=${p.architecture}&distro=debian-${debianMajor}`,
  }));
  const os: CdxComponent = {
    'bom-ref': `os:debian@${input.debianVersion}`,
    type: 'operating-system',
    name: 'debian',
    version: input.debianVersion,
  };
  const node: CdxComponent = {
    'bom-ref': `runtime:node@${input.nodeVersion}`,
    type: 'platform',
    name: 'node',
    version: input.nodeVersion,
    purl: `pkg:generic/node@${input.nodeVersion}?download_url=https://nodejs.org/dist/v${input.nodeVersion}/`,
  };
  const { repository, tag, digest } = input.image;
  const name = repository.slice(repository.lastIndexOf('/') + 1);
  const subject: CdxComponent = {
    'bom-ref': `image:${repository}@${digest}`,
    type: 'container',
    name: repository,
    version: tag,
    purl: `pkg:oci/${name}@${encodeURIComponent(digest)}?repository_url=${repository}&tag=${tag}`,
    hashes: [{ alg: 'SHA-256', content: digest.slice('sha256:'.length) }],
  };

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
