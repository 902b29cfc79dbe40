/**
 * Firewall: applies the nftables ruleset rendered by render/nftables.ts on the target host. Create and update
 * replace our table atomically; delete removes our table and nothing else.
 */
import * as pulumi from '@pulumi/pulumi';
import { type HostTarget, hostCommand } from './host.js';
import { deleteTableCommand, type FirewallRules, renderNftables, tableOf } from './render/nftables.js';
import { sudoPrefix } from './render/shell.js';

export interface FirewallArgs {
  target: HostTarget;
  rules: FirewallRules;
}

export class Firewall extends pulumi.ComponentResource {
  readonly ruleset: string;
  /** The nftables table (inet) the rules live in. */
  readonly table: string;

  constructor(name: string, args: FirewallArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super('chatmirror:index:Firewall', name, {}, opts);
    if (args.rules.apiCidrs.length === 0)
      throw new Error(
        `Firewall ${name}: args.rules.apiCidrs is empty, which would close the API to everyone`,
      );
    if (args.rules.apiPorts.length === 0) throw new Error(`Firewall ${name}: args.rules.apiPorts is empty`);
    this.table = tableOf(args.rules);
    this.ruleset = renderNftables(args.rules);
    const sudo = sudoPrefix(args.target.sudo);
    // Check first (`nft -c`), then apply: a ruleset the host's nft rejects never half-applies.
    const apply = `set -eu\nruleset=$(cat)\nprintf '%s\\n' "$ruleset" | ${sudo}nft -c -f -\nprintf '%s\\n' "$ruleset" | ${sudo}nft -f -`;
    hostCommand(
      `${name}-nft`,
      args.target,
      {
        create: apply,
        update: apply,
        delete: deleteTableCommand(this.table, sudo),
        stdin: this.ruleset,
        // Another table name is another resource: the new table is applied, then the old delete (with the old
        // name, from state) removes the old table, instead of an update that would leave it filtering forever.
        triggers: [this.table],
      },
      { parent: this },
    );
    this.registerOutputs({ ruleset: this.ruleset, table: this.table });
  }
}
