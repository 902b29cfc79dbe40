/**
 * The host firewall as one nftables table of our own (family inet), rendered as the text `nft -f` applies.
 *
 * Docker publishes ports with DNAT in prerouting, so a published port's packets traverse FORWARD, not INPUT, and
 * a rule on INPUT never sees them. Our `forward` base chain hooks forward at a priority below 0, ahead of
 * Docker's own filter chains, and matches on the connection's original destination (`ct original proto-dst`),
 * i.e. the host port the client asked for, which DNAT has already rewritten in the packet itself. A drop in any
 * base chain is final in nftables, so Docker's accept rules cannot reopen what we close. The `input` chain covers
 * the same ports when they are reached without DNAT (docker-proxy, host networking).
 *
 * The file replaces the table atomically (`table` + `delete table` + the new table in one transaction), and the
 * only thing a delete removes is the table: no flush of the ruleset, no touching Docker's or anyone's tables.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

export interface FirewallRules {
  /** Our table (family inet); default: one per stack, `chatmirror_<stack>` (defaultTableName). */
  table?: string | undefined;
  /** Hook priority; below 0 runs before Docker's filter chains. */
  priority: number;
  /** Host ports of the API (every replica). */
  apiPorts: number[];
  /** Host ports of Prometheus and Grafana. */
  adminPorts: number[];
  apiCidrs: string[];
  adminCidrs: string[];
  /** Written in the header comment. */
  stack: string;
}

const TAB = '\t';

/** The table name rules the program holds itself to: nft's identifier syntax, narrowed, and no nft keyword. */
export const TABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/**
 * Words nft's parser takes as keywords, so `table inet <word>` is a syntax error: every token of nftables 1.0.6's
 * grammar that fits TABLE_NAME and that its `nft -c` refuses as a table name (a test checks each against nft).
 * No keyword contains `_`, so the default `chatmirror_<stack>` never is one; `nft -c` at apply time stays the judge.
 */
export const NFT_KEYWORDS: ReadonlySet<string> = new Set(
  (
    'vmap include define redefine undefine fib socket tproxy osf synproxy typeof hook device devices table chain ' +
    'rule set element map flowtable handle ruleset inet netdev add update replace create insert delete get list ' +
    'reset flush rename describe import export monitor all accept drop continue jump goto return constant ' +
    'interval dynamic timeout elements expires policy size flow offload meter th bridge ether type vlan arp ip ' +
    'ecn icmp igmp ip6 priority icmpv6 ah esp comp flags udp udplite tcp dccp sctp rt rt0 rt2 srh hbh frag dst mh ' +
    'meta mark iif iifname iiftype oif oifname oiftype skuid skgid nftrace rtclassid ibriport obriport ibrname ' +
    'obrname pkttype cpu iifgroup oifgroup cgroup time ct counter log limit quota secmark hour day reject snat ' +
    'dnat masquerade redirect random queue dup fwd numgen jhash symhash position index comment notrack exists ' +
    'missing exthdr ipsec xt'
  ).split(' '),
);

/** Why `name` cannot be our table, or undefined when it can. */
export function tableNameProblem(name: string): string | undefined {
  if (!TABLE_NAME.test(name))
    return 'must be 1 to 32 characters of a-z, 0-9 and _, starting with a letter (an nft identifier)';
  if (NFT_KEYWORDS.has(name))
    return `is an nft keyword (table inet ${name} does not parse); e.g. chatmirror_${name}`;
  return undefined;
}

/**
 * One table per stack, so two stacks on one host never replace each other's rules: `chatmirror_<stack>`, the
 * stack name lower-cased with every other character as `_`. Where that loses information (`prod-eu` and `prod_eu`
 * would meet) or runs past 32 characters, a short hash of the stack name keeps it unique.
 */
export function defaultTableName(stack: string): string {
  const clean = stack.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const plain = `chatmirror_${clean}`;
  if (clean === stack && plain.length <= 32) return plain;
  const hash = createHash('sha256').update(stack).digest('hex').slice(0, 8);
  return `chatmirror_${clean.slice(0, 32 - 'chatmirror_'.length - 9)}_${hash}`;
}

/** The table the rules go into: the configured one, else the stack's own. */
export function tableOf(rules: Pick<FirewallRules, 'table' | 'stack'>): string {
  return rules.table ?? defaultTableName(rules.stack);
}

export function renderNftables(rules: FirewallRules): string {
  const table = tableOf(rules);
  const problem = tableNameProblem(table);
  if (problem !== undefined) throw new Error(`nftables table name ${table} ${problem}`);
  const sets = [...addressSets('api', rules.apiCidrs), ...addressSets('admin', rules.adminCidrs)];
  const classes: [string, number[]][] = [
    ['api', rules.apiPorts],
    ['admin', rules.adminPorts],
  ];
  const forwardRules = classes
    .filter(([, ports]) => ports.length > 0)
    .map(
      ([name, ports]) =>
        `ct direction original ct status dnat meta l4proto tcp ct original proto-dst ${portSet(ports)} jump ${name}_clients`,
    );
  const inputRules = classes
    .filter(([, ports]) => ports.length > 0)
    .map(([name, ports]) => `tcp dport ${portSet(ports)} jump ${name}_clients`);

  const lines = [
    '#!/usr/sbin/nft -f',
    `# chatmirror ${rules.stack}: generated by infra/render/nftables.ts. Only table inet ${table} is touched.`,
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    ...sets.flatMap((set) => [...set.map((l) => TAB + l), '']),
    `${TAB}chain forward {`,
    `${TAB}${TAB}type filter hook forward priority ${rules.priority}; policy accept;`,
    `${TAB}${TAB}ct state established,related accept`,
    ...forwardRules.map((r) => TAB + TAB + r),
    `${TAB}}`,
    '',
    `${TAB}chain input {`,
    `${TAB}${TAB}type filter hook input priority ${rules.priority}; policy accept;`,
    `${TAB}${TAB}ct state established,related accept`,
    `${TAB}${TAB}iif "lo" accept`,
    ...inputRules.map((r) => TAB + TAB + r),
    `${TAB}}`,
    ...classes.flatMap(([name]) => [
      '',
      `${TAB}chain ${name}_clients {`,
      `${TAB}${TAB}ip saddr @${name}_v4 accept`,
      `${TAB}${TAB}ip6 saddr @${name}_v6 accept`,
      `${TAB}${TAB}counter drop`,
      `${TAB}}`,
    ]),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** Deletes our table if it exists; exits 0 either way so a destroy never fails on an already clean host. */
export function deleteTableCommand(table: string, sudo: string): string {
  return `if ${sudo}nft list table inet ${table} >/dev/null 2>&1; then ${sudo}nft delete table inet ${table}; fi`;
}

function addressSets(name: string, cidrs: string[]): string[][] {
  const v4 = collapseCidrs(cidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 4));
  const v6 = collapseCidrs(cidrs.filter((c) => isIP(c.split('/')[0] ?? '') === 6));
  return [addressSet(`${name}_v4`, 'ipv4_addr', v4), addressSet(`${name}_v6`, 'ipv6_addr', v6)];
}

function addressSet(name: string, type: string, elements: string[]): string[] {
  return [
    `set ${name} {`,
    `${TAB}type ${type}`,
    `${TAB}flags interval`,
    // Overlapping or adjacent intervals are merged by nft instead of failing `conflicting intervals specified`
    // (collapseCidrs already drops the covered ones; this also covers what a reader adds by hand).
    `${TAB}auto-merge`,
    // An empty set is written without elements: `elements = { }` is a syntax error, and an empty set matches nothing.
    ...(elements.length > 0 ? [`${TAB}elements = { ${elements.join(', ')} }`] : []),
    '}',
  ];
}

function portSet(ports: number[]): string {
  const unique = [...new Set(ports)].sort((a, b) => a - b);
  return unique.length === 1 ? String(unique[0]) : `{ ${unique.join(', ')} }`;
}

/**
 * CIDRs of one family as the set's elements: each masked to its network (`10.1.2.3/16` is `10.1.0.0/16`),
 * duplicates and CIDRs inside another one dropped (`10.1.0.0/16` inside `10.0.0.0/8`), so nft never sees two
 * intervals that overlap. A host route is written as the bare address. Sorted by address.
 */
export function collapseCidrs(cidrs: readonly string[]): string[] {
  const nets = cidrs.map(parseCidr).sort((a, b) => a.prefix - b.prefix || cmp(a.network, b.network));
  const kept: Net[] = [];
  for (const net of nets) {
    if (!kept.some((k) => k.family === net.family && covers(k, net))) kept.push(net);
  }
  return kept.sort((a, b) => cmp(a.network, b.network) || a.prefix - b.prefix).map(formatNet);
}

interface Net {
  family: 4 | 6;
  network: bigint;
  prefix: number;
}

function parseCidr(cidr: string): Net {
  const [address = '', prefixText] = cidr.split('/');
  const family = isIP(address);
  if (family !== 4 && family !== 6)
    throw new Error(`nftables: ${cidr} is not an IPv4 or IPv6 address or CIDR`);
  const bits = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits)
    throw new Error(`nftables: ${cidr} has a prefix length outside 0 to ${bits}`);
  const value = family === 4 ? v4ToBigInt(address) : v6ToBigInt(address);
  return { family, network: value & mask(bits, prefix), prefix };
}

function mask(bits: number, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return all ^ ((1n << BigInt(bits - prefix)) - 1n);
}

function covers(outer: Net, inner: Net): boolean {
  const bits = outer.family === 4 ? 32 : 128;
  return outer.prefix <= inner.prefix && (inner.network & mask(bits, outer.prefix)) === outer.network;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function v4ToBigInt(address: string): bigint {
  return address.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4 !== undefined) {
    const n = v4ToBigInt(v4);
    text = `${text.slice(0, -v4.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const parts =
    tail === undefined
      ? headParts
      : [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  return parts.reduce((n, part) => (n << 16n) | BigInt(Number.parseInt(part, 16)), 0n);
}

function formatNet(net: Net): string {
  const bits = net.family === 4 ? 32 : 128;
  const address = net.family === 4 ? formatV4(net.network) : formatV6(net.network);
  return net.prefix === bits ? address : `${address}/${net.prefix}`;
}

function formatV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((n >> shift) & 0xffn)).join('.');
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero hextets as `::`. */
function formatV6(n: bigint): string {
  const hextets = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}
