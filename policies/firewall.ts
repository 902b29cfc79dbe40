/**
 * The firewall a stack applies touches only its own nft table (never `flush ruleset`, never Docker's or the
 * host's tables), and admits no source at all to a published API port.
 */
import { defaultTableName } from '../infra/render/nftables.js';
import { firewallsOf, publishedApi } from './exposure.js';
import { accessTo, looksLikeRuleset, parseRuleset, tablesTouched } from './lib/nft.js';
import { anyResourcePolicy, configOf, type Finding, type StackFinding, stackPolicy } from './lib/policy.js';
import { commandProps, isCommand, publishedPort, stackOf } from './lib/resources.js';

export interface OwnTableConfig {
  /** Tables besides the stack's default one (`chatmirror_<stack>`) a firewall may touch (firewall.table). */
  allowedTables: string[];
}

const OWN_TABLE_DEFAULTS: OwnTableConfig = { allowedTables: [] };

export function checkOwnTable(ruleset: string, stack: string, config: OwnTableConfig): Finding[] {
  const own = [defaultTableName(stack), ...config.allowedTables].map((t) => `inet ${t}`);
  const foreign = tablesTouched(parseRuleset(ruleset)).filter((t) => !own.includes(t));
  return foreign.length === 0
    ? []
    : [
        {
          problem: `its ruleset touches ${foreign.join(', ')}, not only the stack's own table ${own[0]}`,
          fix: `keep every rule in table ${own[0]} (unset firewall.table, or name the table in this policy's allowedTables)`,
        },
      ];
}

export const firewallPolicies = [
  anyResourcePolicy(
    {
      name: 'firewall-own-table',
      description: "A firewall touches only its stack's own nft table.",
      configSchema: {
        properties: {
          allowedTables: {
            type: 'array',
            items: { type: 'string' },
            default: OWN_TABLE_DEFAULTS.allowedTables,
            description: 'Further inet tables a stack may own (firewall.table).',
          },
        },
      },
    },
    (args) => {
      if (!isCommand(args)) return [];
      const stdin = String(commandProps(args).stdin ?? '');
      if (!looksLikeRuleset(stdin)) return [];
      return checkOwnTable(stdin, stackOf(args.urn), configOf(args, OWN_TABLE_DEFAULTS));
    },
  ),
  stackPolicy(
    {
      name: 'firewall-no-accept-all',
      description: 'No firewall rule admits every source to a published API port.',
    },
    (args) => {
      const ports = [...new Set(publishedApi(args.resources).map(({ port }) => publishedPort(port)))];
      const findings: StackFinding[] = [];
      for (const { resource, ruleset } of firewallsOf(args.resources))
        for (const port of ports)
          for (const rule of accessTo(ruleset, port).acceptsAll)
            findings.push({
              resource,
              problem: `rule "${rule}" admits every source to API port ${port}`,
              fix: 'list the client networks in firewall.apiCidrs in the stack config, never 0.0.0.0/0 or ::/0',
            });
      return findings;
    },
  ),
];
