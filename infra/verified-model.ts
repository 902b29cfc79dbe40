/**
 * VerifiedModel: the model directory on the target host checked by sha256 — its SHA256SUMS against the pin in
 * config, then every file the manifest lists — before any container that mounts it is created. A changed pin or
 * directory re-runs the check.
 */
import * as pulumi from '@pulumi/pulumi';
import { type HostTarget, hostCommand } from './host.js';
import { verifyModelScript } from './render/shell.js';

export interface VerifiedModelArgs {
  target: HostTarget;
  /** Absolute model directory on the target host. */
  hostPath: string;
  manifestSha256: string;
}

export class VerifiedModel extends pulumi.ComponentResource {
  readonly hostPath: string;
  /** The check's output (`verified <hash>`); depend on the component to order containers after it. */
  readonly verified: pulumi.Output<string>;

  constructor(name: string, args: VerifiedModelArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:VerifiedModel', name, {}, opts);
    if (!args.hostPath.startsWith('/'))
      throw new Error(`VerifiedModel ${name}: args.hostPath must be absolute, got ${args.hostPath}`);
    if (!/^[0-9a-f]{64}$/.test(args.manifestSha256))
      throw new Error(
        `VerifiedModel ${name}: args.manifestSha256 must be 64 hex digits, got ${args.manifestSha256}`,
      );
    this.hostPath = args.hostPath;
    const script = verifyModelScript({ dir: args.hostPath, manifestSha256: args.manifestSha256 });
    const check = hostCommand(
      `${name}-sha256`,
      args.target,
      { create: script, update: script, triggers: [args.hostPath, args.manifestSha256] },
      { parent: this },
    );
    this.verified = check.stdout;
    this.registerOutputs({ hostPath: this.hostPath, verified: this.verified });
  }
}
