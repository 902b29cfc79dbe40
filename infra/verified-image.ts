/**
 * VerifiedImage: an image pinned as `repo@sha256:…`, pulled by that digest (never by tag), and — when a tag is
 * given — the tag's current digest in the registry compared with the pin on every preview. A difference is
 * reported as drift (a warning and an output); the pin is what runs until the stack config changes it.
 */
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';

export const DIGEST_REF = /^(?<repo>[a-z0-9]+(?:[._/:-][a-z0-9]+)*)@(?<digest>sha256:[0-9a-f]{64})$/;

export interface VerifiedImageArgs {
  /** repo@sha256:<64 hex>. */
  ref: string;
  /** repo:tag whose registry digest is compared with the pin. */
  tag?: string;
  provider: docker.Provider;
}

export interface ImageDrift {
  tag: string;
  pinned: string;
  current: string;
  drifted: boolean;
}

export class VerifiedImage extends pulumi.ComponentResource {
  /** The pinned reference: what containers are created from. */
  readonly ref: string;
  readonly digest: string;
  readonly imageId: pulumi.Output<string>;
  readonly drift: pulumi.Output<ImageDrift | undefined>;

  constructor(name: string, args: VerifiedImageArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:VerifiedImage', name, {}, opts);
    const match = DIGEST_REF.exec(args.ref);
    if (match?.groups === undefined)
      throw new Error(
        `VerifiedImage ${name}: args.ref must be repo@sha256:<64 hex digits>, got ${JSON.stringify(args.ref)}`,
      );
    if (args.tag?.includes('@'))
      throw new Error(`VerifiedImage ${name}: args.tag must be repo:tag, not a digest (${args.tag})`);
    this.ref = args.ref;
    this.digest = match.groups.digest ?? '';

    const image = new docker.RemoteImage(
      name,
      { name: args.ref, keepLocally: true },
      { parent: this, provider: args.provider },
    );
    this.imageId = image.imageId;

    const tag = args.tag;
    this.drift =
      tag === undefined
        ? pulumi.output(undefined)
        : docker
            .getRegistryImageOutput({ name: tag }, { parent: this, provider: args.provider })
            .apply((current) => {
              const drift = {
                tag,
                pinned: this.digest,
                current: current.sha256Digest,
                drifted: current.sha256Digest !== this.digest,
              };
              if (drift.drifted)
                pulumi.log.warn(
                  `${tag} now points at ${drift.current}; this stack runs ${drift.pinned}. Update the digest to roll forward.`,
                  this,
                );
              return drift;
            });
    this.registerOutputs({ ref: this.ref, imageId: this.imageId, drift: this.drift });
  }
}
