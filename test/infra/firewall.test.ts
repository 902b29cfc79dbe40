/**
 * The firewall's rules as nft itself reads them: overlapping CIDRs, one table per stack, table names nft parses.
 * `nft -c` only checks a ruleset (it never applies anything to this host).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseStackConfig } from '../../infra/config.js';
import {
  collapseCidrs,
  defaultTableName,
  type FirewallRules,
  NFT_KEYWORDS,
  renderNftables,
  TABLE_NAME,
  tableNameProblem,
} from '../../infra/render/nftables.js';
import { stackPlanOptions } from './fixtures.js';
import { planStack } from './plan.js';

function nftAvailable(): boolean {
  try {
    execFileSync('nft', ['-c', '-f', '-'], { input: 'table inet chatmirror_probe {}\n', stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}
const NFT = nftAvailable();

/** `nft -c -f -` on the text: undefined when nft accepts it, else what nft said. */
function nftCheck(ruleset: string): string | undefined {
  try {
    execFileSync('nft', ['-c', '-f', '-'], { input: ruleset, stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err);
  }
}

const OVERLAPPING: FirewallRules = {
  stack: 'prod',
  priority: -10,
  apiPorts: [8443, 8444],
  adminPorts: [9090, 3000],
  apiCidrs: [
    '10.0.0.0/8',
    '10.1.0.0/16',
    '10.1.2.3/16',
    '10.0.0.0/8',
    '192.0.2.0/25',
    '192.0.2.128/25',
    '2001:db8::/32',
    '2001:db8:1::/48',
  ],
  adminCidrs: ['10.99.0.0/16', '10.99.1.0/24', '10.99.1.7', '::/0', 'fd00::/8'],
};

describe('overlapping CIDRs', () => {
  it.skipIf(!NFT)('render a ruleset nft -c accepts', () => {
    expect(nftCheck(renderNftables(OVERLAPPING))).toBeUndefined();
  });

  it('collapse to the CIDRs that are not inside another one, masked to their network', () => {
    expect(collapseCidrs(['10.1.0.0/16', '10.0.0.0/8', '10.1.2.3/16', '10.0.0.0/8', '192.0.2.7'])).toEqual([
      '10.0.0.0/8',
      '192.0.2.7',
    ]);
    expect(collapseCidrs(['10.1.2.3/16', '10.2.0.0/16'])).toEqual(['10.1.0.0/16', '10.2.0.0/16']);
    expect(collapseCidrs(['2001:0DB8:0000:0000::1/32', '2001:db8:1::/48', 'fe80::1:0:0:1/128'])).toEqual([
      '2001:db8::/32',
      'fe80::1:0:0:1',
    ]);
    expect(collapseCidrs(['::ffff:10.0.0.0/104', '::ffff:10.1.0.0/112'])).toEqual(['::ffff:a00:0/104']);
    expect(collapseCidrs(['0.0.0.0/0', '10.0.0.0/8'])).toEqual(['0.0.0.0/0']);
  });

  it('reach the stack file as written and still pass nft -c through the program', async () => {
    const options = await stackPlanOptions('staging');
    options.config['chatmirror:firewall'] = {
      enabled: true,
      apiCidrs: ['10.0.0.0/8', '10.1.0.0/16', '203.0.113.0/24', '203.0.113.64/26'],
      adminCidrs: ['10.20.0.0/16', '10.20.5.0/24'],
    };
    const plan = await planStack(options);
    const nft = plan.resources.find((r) => r.name === 'firewall-nft');
    const ruleset = String(nft?.inputs.stdin);
    expect(ruleset).toContain('elements = { 10.0.0.0/8, 203.0.113.0/24 }');
    expect(ruleset).toContain('elements = { 10.20.0.0/16 }');
    if (NFT) expect(nftCheck(ruleset)).toBeUndefined();
  });
});

describe('table per stack', () => {
  it('defaults to chatmirror_<stack>, so two stacks on one host keep their own tables', async () => {
    expect(defaultTableName('staging')).toBe('chatmirror_staging');
    const names = [
      'staging',
      'prod',
      'prod-eu',
      'prod_eu',
      'Prod',
      'a.b',
      'x'.repeat(100),
      `${'x'.repeat(100)}y`,
    ];
    const tables = names.map(defaultTableName);
    expect(new Set(tables).size).toBe(names.length);
    for (const table of tables) expect(tableNameProblem(table)).toBeUndefined();
    if (NFT)
      for (const table of tables)
        expect(nftCheck(renderNftables({ ...OVERLAPPING, stack: 'x', table }))).toBeUndefined();

    const options = await stackPlanOptions('staging');
    const staging = await planStack(options);
    const nft = staging.resources.find((r) => r.name === 'firewall-nft');
    expect(String(nft?.inputs.stdin)).toContain('table inet chatmirror_staging {\n');
    expect(nft?.inputs.delete).toContain('nft delete table inet chatmirror_staging');
    expect(nft?.inputs.triggers).toEqual(['chatmirror_staging']);
  });

  it('keeps a configured table, and replaces the command when it changes (the old delete runs)', async () => {
    const options = await stackPlanOptions('staging');
    const firewall = options.config['chatmirror:firewall'] as Record<string, unknown>;
    options.config['chatmirror:firewall'] = { ...firewall, table: 'edge_rules' };
    const plan = await planStack(options);
    const nft = plan.resources.find((r) => r.name === 'firewall-nft');
    expect(String(nft?.inputs.stdin)).toContain('table inet edge_rules {\n');
    expect(nft?.inputs.triggers).toEqual(['edge_rules']);
  });
});

describe('table name validation', () => {
  const minimal = {
    'chatmirror:profile': 'dev',
    'chatmirror:model': { hostPath: '/m', manifestSha256: 'a'.repeat(64) },
    'chatmirror:monitoring': { enabled: false },
  };
  const errorOf = (firewall: Record<string, unknown>) => {
    try {
      parseStackConfig({ ...minimal, 'chatmirror:firewall': firewall });
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('refuses keywords and non-identifiers, naming the key', () => {
    expect(errorOf({ table: 'ip' })).toContain('chatmirror:firewall.table: is an nft keyword');
    expect(errorOf({ table: 'Chat-Mirror' })).toContain(
      'chatmirror:firewall.table: must be 1 to 32 characters of a-z, 0-9 and _, starting with a letter',
    );
    expect(errorOf({ table: 'x'.repeat(33) })).toContain('chatmirror:firewall.table:');
    expect(errorOf({ table: 'chatmirror' })).toBe('');
    expect(errorOf({ enabled: true, apiCidrs: [] })).toContain(
      'chatmirror:firewall.apiCidrs: must list at least one CIDR when chatmirror:firewall.enabled is true',
    );
  });

  it.skipIf(!NFT)(
    'agrees with nft: every keyword refused is one nft refuses, and accepted names parse',
    () => {
      const table = (name: string) => `table inet ${name} {\n}\n`;
      const accepted = [...NFT_KEYWORDS].filter((word) => nftCheck(table(word)) === undefined);
      expect(accepted).toEqual([]);
      for (const word of NFT_KEYWORDS) expect(TABLE_NAME.test(word)).toBe(true);
      for (const name of ['chatmirror', 'filter', 'nat', 'edge_rules', 'l4proto', 'a1', 'chatmirror_ip'])
        expect([name, tableNameProblem(name), nftCheck(table(name))]).toEqual([name, undefined, undefined]);
    },
  );
});
