/**
 * Who the client is, network-wise: `trustProxyFunction` tells Fastify which peers may set X-Forwarded-For
 * (only the configured proxy CIDRs, so a direct client cannot claim another address), and
 * `ipAllowlistPlugin` refuses every request whose resulting `request.ip` is outside network.allowlist.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack listener reports for IPv4 peers) match IPv4
 * rules and the other way round, as Node's BlockList does.
 */
import { BlockList, isIP } from 'node:net';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { cidrProblem } from '../config/describe.js';
import { ApiError } from '../errors.js';

/** `(address) → whether it lies in one of `cidrs``; an address that is not an IP (say `unknown`) never does. */
export function cidrMatcher(cidrs: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const problem = cidrProblem(cidr);
    if (problem) throw new RangeError(`${JSON.stringify(cidr)} ${problem}`);
    const [address = '', prefix] = cidr.split('/');
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return (address) => {
    // A link-local peer may carry its zone (`fe80::1%eth0`); the zone is not part of the address.
    const bare = address.split('%')[0] ?? '';
    const family = isIP(bare);
    if (family === 0) return false;
    return list.check(bare, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * For Fastify's `trustProxy` option: a peer is trusted (its X-Forwarded-For hop is believed) only when its
 * address is in `trustedProxies`. An empty list trusts nobody, so `request.ip` is the socket's peer.
 */
export function trustProxyFunction(
  trustedProxies: readonly string[],
): (address: string, hop: number) => boolean {
  const trusted = cidrMatcher(trustedProxies);
  return (address) => trusted(address);
}

export interface IpAllowlistOptions {
  /** Client CIDRs allowed; empty allows every address. */
  allowlist: readonly string[];
}

/**
 * Refuses requests from addresses outside `allowlist` with 403 `ip_not_allowed`, before anything else of the
 * request is read. Applies to the whole app (it is not encapsulated); register it after the hook that sets
 * x-request-id so refusals carry one too.
 */
async function ipAllowlist(app: FastifyInstance, options: IpAllowlistOptions): Promise<void> {
  if (options.allowlist.length === 0) return;
  const allowed = cidrMatcher(options.allowlist);
  app.addHook('onRequest', async (request) => {
    if (!allowed(request.ip)) {
      throw new ApiError('ip_not_allowed', `Requests from ${request.ip} are not allowed.`);
    }
  });
}

export const ipAllowlistPlugin: FastifyPluginAsync<IpAllowlistOptions> = Object.assign(ipAllowlist, {
  // What fastify-plugin sets: the hook lands on the parent instance, so every route gets it.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'ip-allowlist',
});
