/**
 * Reads an nftables ruleset (the file `nft -f` applies) into tables, chains and sets, enough to answer what the
 * firewall policies ask: which tables it touches, and who may reach a port. Written for the `nft -f` syntax
 * infra/render/nftables.ts emits and hand-written files like it (one statement per line, `{ … }` blocks).
 */

export interface NftChain {
  name: string;
  /** `input`, `forward`… for a base chain; undefined for a regular chain (reached by jump/goto). */
  hook?: string;
  /** `accept` or `drop` for a base chain. */
  policy?: string;
  rules: string[];
}

export interface NftSet {
  name: string;
  elements: string[];
}

export interface NftTable {
  family: string;
  name: string;
  chains: NftChain[];
  sets: NftSet[];
}

export interface NftRuleset {
  tables: NftTable[];
  /** Statements outside table blocks (`table inet x`, `delete table inet x`, `flush ruleset`, `add rule …`). */
  statements: string[];
}

/** Is this text an nft ruleset at all (so a policy knows the command applies a firewall)? */
export function looksLikeRuleset(text: string): boolean {
  return /^\s*table\s+\S+\s+\S+\s*\{/m.test(text);
}

export function parseRuleset(text: string): NftRuleset {
  const lines = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '');
  const ruleset: NftRuleset = { tables: [], statements: [] };
  let table: NftTable | undefined;
  let chain: NftChain | undefined;
  let set: NftSet | undefined;
  let pendingElements: string | undefined;
  for (const line of lines) {
    if (pendingElements !== undefined) {
      pendingElements += ` ${line}`;
      if (line.includes('}')) {
        set?.elements.push(...elementsOf(pendingElements));
        pendingElements = undefined;
      }
      continue;
    }
    if (set !== undefined) {
      if (line === '}') set = undefined;
      else if (line.startsWith('elements')) {
        if (line.includes('}')) set.elements.push(...elementsOf(line));
        else pendingElements = line;
      }
      continue;
    }
    if (chain !== undefined) {
      if (line === '}') chain = undefined;
      else if (line.startsWith('type ')) {
        chain.hook = /\bhook\s+(\w+)/.exec(line)?.[1];
        chain.policy = /\bpolicy\s+(\w+)/.exec(line)?.[1];
      } else chain.rules.push(line);
      continue;
    }
    if (table !== undefined) {
      const block = /^(chain|set)\s+(\S+)\s*\{$/.exec(line);
      if (block?.[1] === 'chain') {
        chain = { name: block[2]!, rules: [] };
        table.chains.push(chain);
      } else if (block?.[1] === 'set') {
        set = { name: block[2]!, elements: [] };
        table.sets.push(set);
      } else if (line === '}') table = undefined;
      continue;
    }
    const open = /^table\s+(\S+)\s+(\S+)\s*\{$/.exec(line);
    if (open !== null) {
      table = { family: open[1]!, name: open[2]!, chains: [], sets: [] };
      ruleset.tables.push(table);
    } else ruleset.statements.push(line);
  }
  return ruleset;
}

function elementsOf(text: string): string[] {
  const inner = /\{([^}]*)\}/.exec(text)?.[1] ?? '';
  return inner
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/** Every table a ruleset touches: its blocks and the tables its top-level statements name. */
export function tablesTouched(ruleset: NftRuleset): string[] {
  const names = ruleset.tables.map((t) => `${t.family} ${t.name}`);
  for (const statement of ruleset.statements) {
    if (/^flush\s+ruleset\b/.test(statement)) names.push('(the whole ruleset)');
    const named =
      /^(?:(?:add|create|delete|destroy|flush|insert|replace|list)\s+)?(?:table|chain|rule|set|map|element)\s+(\S+)\s+(\S+)/.exec(
        statement,
      );
    if (named !== null) names.push(`${named[1]} ${named[2]}`);
  }
  return [...new Set(names)];
}

const WILDCARD = /^(0\.0\.0\.0|::)\/0$/;

/** Source networks a rule matches (`ip saddr @set`, `ip6 saddr 10.0.0.0/8`, `ip saddr { a, b }`). */
function sourcesOf(rule: string, table: NftTable): string[] | undefined {
  const m = /\bip6?\s+saddr\s+(@\S+|\{[^}]*\}|\S+)/.exec(rule);
  if (m === null) return undefined;
  const ref = m[1]!;
  if (ref.startsWith('@')) return table.sets.find((s) => s.name === ref.slice(1))?.elements ?? [];
  if (ref.startsWith('{')) return elementsOf(ref);
  return [ref];
}

function matchesPort(rule: string, port: number): boolean {
  const m = /\b(?:dport|proto-dst)\s+(\{[^}]*\}|\d+)/.exec(rule);
  if (m === null) return false;
  const ports = m[1]!.startsWith('{') ? elementsOf(m[1]!) : [m[1]!];
  return ports.some((p) => {
    const [lo, hi = lo] = p.split('-').map(Number);
    return lo !== undefined && hi !== undefined && port >= lo && port <= hi;
  });
}

const isVerdictRule = (rule: string, verdict: string) => new RegExp(`(^|\\s)${verdict}$`).test(rule);

export interface PortAccess {
  /** A `forward` base chain of this ruleset sends the port to a chain that admits listed sources only. */
  restricted: boolean;
  /** Rules (with the chain they are in) that admit any source to the port. */
  acceptsAll: string[];
}

/**
 * Who may reach `port`: Docker publishes a port by DNAT, so its traffic crosses the forward hook, not input; a
 * port is restricted when a forward chain jumps it to a chain whose accepts all name source networks (none of
 * them 0/0) and which ends by dropping.
 */
export function accessTo(ruleset: NftRuleset, port: number): PortAccess {
  const acceptsAll: string[] = [];
  let restricted = false;
  for (const table of ruleset.tables) {
    for (const chain of table.chains.filter((c) => c.hook !== undefined)) {
      for (const rule of chain.rules.filter((r) => matchesPort(r, port))) {
        if (isVerdictRule(rule, 'accept')) {
          const sources = sourcesOf(rule, table);
          if (sources === undefined || sources.some((s) => WILDCARD.test(s)))
            acceptsAll.push(`${table.name}/${chain.name}: ${rule}`);
          continue;
        }
        const target = /\b(?:jump|goto)\s+(\S+)/.exec(rule)?.[1];
        const to = table.chains.find((c) => c.name === target);
        if (to === undefined) continue;
        const open = to.rules.filter((r) => isVerdictRule(r, 'accept') && !listedSourcesOnly(r, table));
        acceptsAll.push(...open.map((r) => `${table.name}/${to.name}: ${r}`));
        const endsInDrop = /(^|\s)(drop|reject)(\s|$)/.test(to.rules.at(-1) ?? '');
        const admitsSomeone = to.rules.some(
          (r) => isVerdictRule(r, 'accept') && (sourcesOf(r, table)?.length ?? 0) > 0,
        );
        if (chain.hook === 'forward' && open.length === 0 && endsInDrop && admitsSomeone) restricted = true;
      }
    }
  }
  return { restricted, acceptsAll: [...new Set(acceptsAll)] };
}

function listedSourcesOnly(rule: string, table: NftTable): boolean {
  const sources = sourcesOf(rule, table);
  return sources !== undefined && !sources.some((s) => WILDCARD.test(s));
}
