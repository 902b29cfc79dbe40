/**
 * The target host as the program's components see it: where a host command runs (this machine, or the remote
 * host over SSH with its key pinned) and the Docker provider that talks to its daemon. Components take a
 * `HostTarget` and never look at the config's target section themselves.
 */
import * as command from '@pulumi/command';
import * as docker from '@pulumi/docker';
import type * as pulumi from '@pulumi/pulumi';
import { dockerHostUrl, type SshTarget, sshOptions } from './render/ssh.js';

export type HostTarget =
  | { kind: 'local'; sudo: boolean }
  | {
      kind: 'ssh';
      sudo: boolean;
      ssh: SshTarget;
      /** Read from privateKeyPath on the machine running pulumi; absent: the SSH agent is used. */
      privateKey?: pulumi.Input<string>;
    };

export interface HostCommandArgs {
  create: pulumi.Input<string>;
  update?: pulumi.Input<string>;
  delete?: pulumi.Input<string>;
  stdin?: pulumi.Input<string>;
  triggers?: pulumi.Input<unknown[]>;
}

/** A command on the target: `local.Command` for the local host, `remote.Command` (host key pinned) over SSH. */
export function hostCommand(
  name: string,
  target: HostTarget,
  args: HostCommandArgs,
  opts: pulumi.CustomResourceOptions,
): command.local.Command | command.remote.Command {
  if (target.kind === 'local') {
    return new command.local.Command(name, { ...args, interpreter: ['/bin/sh', '-c'] }, opts);
  }
  return new command.remote.Command(
    name,
    {
      ...args,
      connection: {
        host: target.ssh.host,
        port: target.ssh.port,
        user: target.ssh.user,
        hostKey: target.ssh.hostKey,
        ...(target.privateKey === undefined
          ? { agentSocketPath: process.env.SSH_AUTH_SOCK ?? '' }
          : { privateKey: target.privateKey }),
      },
    },
    opts,
  );
}

/** The Docker provider for the target: the local daemon (DOCKER_HOST), or `ssh://` with the pinned options. */
export function dockerProvider(name: string, target: HostTarget, opts: pulumi.CustomResourceOptions = {}) {
  if (target.kind === 'local') return new docker.Provider(name, {}, opts);
  return new docker.Provider(
    name,
    { host: dockerHostUrl(target.ssh), sshOpts: sshOptions(target.ssh) },
    opts,
  );
}
