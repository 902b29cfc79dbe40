/**
 * HostFiles: a directory of files on the target host (config, TLS material, tokens, provisioning), written by
 * one host command. Containers mount the directory read-only; a read-only root filesystem rules out copying
 * files into the container itself.
 */
import * as pulumi from '@pulumi/pulumi';
import { type HostCommandArgs, type HostTarget, hostCommand } from './host.js';
import { filesToStdin, removeFilesScript, writeFilesScript } from './render/shell.js';

export interface HostFilesArgs {
  target: HostTarget;
  /** Absolute directory on the target host. */
  dir: string;
  /** Group that owns the files (every container runs with it). */
  group: number;
  /** Mode of the directories; 2770 lets containers of the group write there too (textfile metrics). */
  dirMode?: string;
  files: { name: string; content: pulumi.Input<string>; mode: string }[];
  /** The stack's data directory: on delete, the directories up to it that are left empty go too. */
  root?: string;
}

export class HostFiles extends pulumi.ComponentResource {
  /** The directory written (for mounts). */
  readonly dir: string;
  /** Resolves once the files are in place: depend on this before starting a reader. */
  readonly written: pulumi.Output<string>;

  constructor(name: string, args: HostFilesArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:HostFiles', name, {}, opts);
    if (!args.dir.startsWith('/'))
      throw new Error(`HostFiles ${name}: args.dir must be absolute, got ${args.dir}`);
    if (args.files.length === 0) throw new Error(`HostFiles ${name}: args.files is empty`);
    const names = args.files.map((f) => f.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate !== undefined) throw new Error(`HostFiles ${name}: args.files names ${duplicate} twice`);

    this.dir = args.dir;
    const stdin = pulumi
      .all(args.files.map((f) => pulumi.output(f.content)))
      .apply((contents) =>
        filesToStdin(args.files.map((f, i) => ({ name: f.name, mode: f.mode, content: contents[i] ?? '' }))),
      );
    const script = writeFilesScript({
      dir: args.dir,
      group: args.group,
      sudo: args.target.sudo,
      dirMode: args.dirMode ?? '0750',
    });
    const commandArgs: HostCommandArgs = {
      create: script,
      update: script,
      delete: removeFilesScript({
        dir: args.dir,
        names,
        sudo: args.target.sudo,
        ...(args.root === undefined ? {} : { pruneUpTo: args.root }),
      }),
      stdin,
      // Another directory is another resource: the files are written there, then the old delete (its paths from
      // state) removes the old ones, instead of an update that would orphan them. A changed name list updates in
      // place: the write removes the names it no longer lists (shell.ts MANIFEST), which a replace could not do
      // safely (the old delete would run after the new write and remove the names both lists share).
      triggers: [args.dir],
    };
    const writer = hostCommand(`${name}-write`, args.target, commandArgs, { parent: this });
    this.written = pulumi.all([writer.id, stdin]).apply(([id]) => id);
    this.registerOutputs({ dir: this.dir, written: this.written });
  }
}
