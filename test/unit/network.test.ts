/**
 * Client addresses through real sockets: X-Forwarded-For is believed only from configured proxies, so a direct
 * client cannot spoof its way into network.allowlist. Apps listen on loopback (IPv4, IPv6 `::1`, and a
 * dual-stack `::` where IPv4 peers show up as `::ffff:127.0.0.1`).
 */
import { createServer } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../service/errors.js';
import { cidrMatcher, ipAllowlistPlugin, trustProxyFunction } from '../../service/security/network.js';

/** Whether this machine can listen on `host` (a container may have no IPv6). */
async function canListen(host: string): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

const hasIpv6Loopback = await canListen('::1');
const hasDualStack = await canListen('::');

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

interface Whoami {
  ip: string;
  peer: string;
}

/** A small app as buildApp wires it: trustProxy from the proxy list, the allowlist plugin, ApiError bodies. */
async function serve(options: { trustedProxies: string[]; allowlist: string[]; host?: string }) {
  const app = Fastify({ trustProxy: trustProxyFunction(options.trustedProxies) });
  apps.push(app);
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).headers(err.headers).send(err.toBody());
    return reply.send(err);
  });
  await app.register(ipAllowlistPlugin, { allowlist: options.allowlist });
  // A route in its own (encapsulated) plugin: the allowlist must reach it too.
  await app.register(async (child) => {
    child.get('/whoami', async (request) => ({ ip: request.ip, peer: request.socket.remoteAddress }));
  });
  const base = await app.listen({ host: options.host ?? '127.0.0.1', port: 0 });
  return async (forwardedFor?: string, url = base) => {
    const response = await fetch(`${url}/whoami`, {
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    });
    return {
      status: response.status,
      body: (await response.json()) as Whoami & { error?: { code: string } },
    };
  };
}

describe('cidrMatcher', () => {
  const match = cidrMatcher(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);

  it.each([
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['2001:db8::5', true],
    ['2001:db9::5', false],
    ['::ffff:10.1.2.3', true], // IPv4-mapped, dotted
    ['::ffff:a01:203', true], // the same, in hex
    ['::ffff:11.0.0.1', false],
    ['unknown', false],
    ['', false],
    ['10.1.2.3:8080', false],
  ])('%s → %s', (address, expected) => {
    expect(match(address)).toBe(expected);
  });

  it('matches IPv4 peers against an IPv4-mapped IPv6 rule too, and strips zone ids', () => {
    expect(cidrMatcher(['::ffff:0:0/96'])('203.0.113.9')).toBe(true);
    expect(cidrMatcher(['fe80::/10'])('fe80::1%eth0')).toBe(true);
  });

  it('refuses a malformed CIDR at construction, naming it', () => {
    expect(() => cidrMatcher(['10.0.0.0/33'])).toThrow(/"10\.0\.0\.0\/33" has a prefix length/);
    expect(() => cidrMatcher(['example.com'])).toThrow(/"example\.com" must be an IPv4 or IPv6 address/);
  });

  it('an empty list matches nothing', () => {
    expect(cidrMatcher([])('127.0.0.1')).toBe(false);
  });
});

describe('trustProxy and the allowlist over loopback (IPv4)', () => {
  it('ignores X-Forwarded-For from an untrusted peer: it cannot spoof into the allowlist', async () => {
    const get = await serve({ trustedProxies: ['10.0.0.0/8'], allowlist: ['203.0.113.0/24'] });
    const spoofed = await get('203.0.113.7');
    expect(spoofed.status).toBe(403);
    expect(spoofed.body.error).toEqual({
      message: 'Requests from 127.0.0.1 are not allowed.',
      type: 'permission_error',
      param: null,
      code: 'ip_not_allowed',
    });
  });

  it('an untrusted peer is itself the client, whatever it forwards', async () => {
    const get = await serve({ trustedProxies: [], allowlist: ['127.0.0.1/32'] });
    expect(await get('203.0.113.7')).toEqual({ status: 200, body: { ip: '127.0.0.1', peer: '127.0.0.1' } });
  });

  it('honours X-Forwarded-For from a trusted proxy', async () => {
    const get = await serve({ trustedProxies: ['127.0.0.0/8'], allowlist: ['203.0.113.0/24'] });
    expect(await get('203.0.113.7')).toEqual({ status: 200, body: { ip: '203.0.113.7', peer: '127.0.0.1' } });
    expect((await get('198.51.100.1')).status).toBe(403);
    // The proxy's own address is not in the allowlist.
    expect((await get()).status).toBe(403);
  });

  it('believes a chain only as far as it is made of trusted proxies', async () => {
    const get = await serve({ trustedProxies: ['127.0.0.0/8', '10.0.0.0/8'], allowlist: [] });
    // client → 10.1.2.3 (trusted) → loopback proxy (trusted) → app
    expect((await get('203.0.113.7, 10.1.2.3')).body.ip).toBe('203.0.113.7');
    // What the client wrote to the left of an untrusted hop is not believed.
    expect((await get('203.0.113.7, 198.51.100.9')).body.ip).toBe('198.51.100.9');
    expect((await get('garbage, 10.1.2.3')).body.ip).toBe('garbage');
  });

  it('refuses an address that is not an IP, forwarded by a trusted proxy', async () => {
    const get = await serve({ trustedProxies: ['127.0.0.1'], allowlist: ['0.0.0.0/0', '::/0'] });
    expect((await get('unknown')).status).toBe(403);
    expect((await get('198.51.100.1')).status).toBe(200);
  });

  it('an empty allowlist allows every address', async () => {
    const get = await serve({ trustedProxies: [], allowlist: [] });
    expect((await get()).status).toBe(200);
  });

  it('refuses a malformed CIDR when the plugin is registered', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(ipAllowlistPlugin, { allowlist: ['10.0.0.0/40'] })).rejects.toThrow(
      /prefix length/,
    );
  });
});

describe.skipIf(!hasIpv6Loopback)('over IPv6 loopback', () => {
  it('applies IPv6 rules to the peer and to forwarded addresses', async () => {
    const direct = await serve({ trustedProxies: [], allowlist: ['::1/128'], host: '::1' });
    expect(await direct('2001:db8::5')).toEqual({ status: 200, body: { ip: '::1', peer: '::1' } });

    const proxied = await serve({ trustedProxies: ['::1/128'], allowlist: ['2001:db8::/32'], host: '::1' });
    expect((await proxied('2001:db8::5')).body.ip).toBe('2001:db8::5');
    expect((await proxied('2001:db9::5')).status).toBe(403);

    const untrusted = await serve({
      trustedProxies: ['fd00::/8'],
      allowlist: ['2001:db8::/32'],
      host: '::1',
    });
    expect((await untrusted('2001:db8::5')).status).toBe(403);
  });
});

describe.skipIf(!hasDualStack)('IPv4 peers of a dual-stack listener (::ffff:127.0.0.1)', () => {
  it('match IPv4 rules, for trust and for the allowlist', async () => {
    const proxied = await serve({
      trustedProxies: ['127.0.0.0/8'],
      allowlist: ['203.0.113.0/24'],
      host: '::',
    });
    const port = new URL(apps.at(-1)!.listeningOrigin).port;
    const viaV4 = `http://127.0.0.1:${port}`;
    expect(await proxied('203.0.113.7', viaV4)).toEqual({
      status: 200,
      body: { ip: '203.0.113.7', peer: '::ffff:127.0.0.1' },
    });

    const direct = await serve({ trustedProxies: [], allowlist: ['127.0.0.1'], host: '::' });
    const directPort = new URL(apps.at(-1)!.listeningOrigin).port;
    expect(await direct('203.0.113.7', `http://127.0.0.1:${directPort}`)).toEqual({
      status: 200,
      body: { ip: '::ffff:127.0.0.1', peer: '::ffff:127.0.0.1' },
    });
  });
});
