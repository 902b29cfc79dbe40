/**
 * The model the API serves is the one reviewed: its directory is checked against a configured sha256 manifest
 * (SHA256SUMS, itself pinned by hash) before the container starts, and mounted read-only so nothing in the
 * container can change it afterwards.
 */
import type { PolicyResource } from '@pulumi/policy';
import { hostFiles, serviceConfigOf } from './lib/host-files.js';
import { type StackFinding, stackPolicy } from './lib/policy.js';
import { commandProps, containerProps, isCommand, withRole } from './lib/resources.js';

const MANIFEST_CHECK = /sha256sum\s+--check/;
const HEX64 = /\b[0-9a-f]{64}\b/;

/** Does this command verify `dir` against a pinned manifest hash, and re-run when the hash changes? */
function verifies(command: PolicyResource, dir: string): boolean {
  const props = commandProps(command);
  const script = String(props.create ?? '');
  const cd = new RegExp(`(^|\\n)cd '${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`);
  const triggers = JSON.stringify(props.triggers ?? []);
  return (
    cd.test(script) &&
    MANIFEST_CHECK.test(script) &&
    HEX64.test(script) &&
    triggers.includes(dir) &&
    HEX64.test(triggers)
  );
}

const dependsOn = (resource: PolicyResource, on: PolicyResource) =>
  resource.dependencies.some((d) => d.urn === on.urn);

export function checkModelVerified(resources: readonly PolicyResource[]): StackFinding[] {
  const files = hostFiles(resources);
  const verifiers = resources.filter(isCommand);
  const findings: StackFinding[] = [];
  for (const resource of withRole(resources, 'api')) {
    const props = containerProps(resource);
    const lookup = serviceConfigOf(resource, files);
    const modelDir = lookup.ok ? lookup.config.engine?.modelDir : undefined;
    const mounts = (props.mounts ?? []).filter((m) =>
      modelDir === undefined ? m.target.startsWith('/models') : modelDir.startsWith(m.target),
    );
    if (mounts.length === 0)
      findings.push({
        resource,
        problem: `no mount provides the model directory ${modelDir ?? '/models/…'}`,
        fix: 'mount model.hostPath (the program does this from the stack config)',
      });
    for (const mount of mounts) {
      if (mount.readOnly !== true)
        findings.push({
          resource,
          problem: `the model mount ${mount.source} → ${mount.target} is writable`,
          fix: 'mount the model read-only (readOnly: true)',
        });
      const verifier = verifiers.find((c) => verifies(c, mount.source ?? ''));
      if (verifier === undefined)
        findings.push({
          resource,
          problem: `nothing checks ${mount.source} against a sha256 manifest before it is served`,
          fix: "set model.manifestSha256 (the sha256 of the model directory's SHA256SUMS) in the stack config",
        });
      else if (!dependsOn(resource, verifier))
        findings.push({
          resource,
          problem: `it does not wait for ${verifier.name}, so it can start on an unverified model`,
          fix: 'make the container depend on the manifest check (dependsOn)',
        });
    }
  }
  return findings;
}

export const modelPolicies = [
  stackPolicy(
    {
      name: 'model-manifest-verified',
      description: 'Every model is checked against a configured sha256 manifest and mounted read-only.',
    },
    (args) => checkModelVerified(args.resources),
  ),
];
