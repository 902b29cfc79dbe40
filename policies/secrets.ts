/**
 * Secret material travels only where the program keeps it secret: a command's stdin (the file channel, which
 * HostFiles wraps in pulumi.secret), an SSH connection's key or password, a TLS resource's key inputs. Never in a
 * container's environment, command line or labels, a command's script, environment or triggers: those land in
 * state and in `docker inspect`/`ps` in clear.
 *
 * Why placement and not secretness: @pulumi/policy hands policies every value already unwrapped
 * (server.js deserializeProperties(props, false)), so a policy cannot see whether a value was a secret; it can
 * see where secret material went. test/policies/stacks.test.ts checks the allowed channels are secret.
 */
import { anyResourcePolicy, type Finding } from './lib/policy.js';

/** Property paths that may carry secret material (by type prefix; `*` any type). */
export const SECRET_CHANNELS: [type: RegExp, path: RegExp][] = [
  [/^command:(local|remote):Command$/, /^stdin$/],
  [/^command:remote:Command$/, /^connection\.(privateKey|password|privateKeyPassword)$/],
  [/^command:remote:Command$/, /^connection\.proxy\.(privateKey|password|privateKeyPassword)$/],
  [/^tls:/, /^(privateKeyPem|caPrivateKeyPem)$/],
  [/^pulumi:providers:docker$/, /^registryAuth\[\d+\]\.password$/],
];

const MATERIAL: [what: string, pattern: RegExp][] = [
  ['a PEM private key', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/],
  ['a chatmirror API key (cmk_…)', /\bcmk_[A-Za-z0-9]+_[A-Za-z0-9_-]{16,}/],
  // NAME=value where NAME says password/token/secret, but not NAME__FILE/NAME_FILE (a path to the secret).
  [
    'a password or token in an environment assignment',
    /(^|\s)[A-Z0-9_]*(PASSWORD|PASSWD|TOKEN|SECRET|API_KEY)=(?!\s|$)\S/,
  ],
  [
    'a password or token on a command line',
    /--(requirepass|password|passwd|token|secret|api-key)(=|\s+)(?!-)\S/,
  ],
  ['a password in a URL', /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:[^\s/@]+@/],
];

/** Every string in a value, with its property path (`envs[2]`, `connection.privateKey`). */
function* strings(value: unknown, path: string): Generator<[string, string]> {
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${path}[${i}]`);
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) yield* strings(v, path === '' ? k : `${path}.${k}`);
}

// A *_FILE variable holds a path, not the secret (GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/…).
const FILE_VARIABLE = /(^|\s)[A-Z0-9_]*_FILE=/;

/** The kind of secret material a string holds, if any. */
export function materialIn(text: string): string | undefined {
  return MATERIAL.find(
    ([kind, pattern]) => pattern.test(text) && !(kind.includes('environment') && FILE_VARIABLE.test(text)),
  )?.[0];
}

export function checkSecretPlacement(type: string, props: Record<string, unknown>): Finding[] {
  const findings: Finding[] = [];
  for (const [path, text] of strings(props, '')) {
    if (SECRET_CHANNELS.some(([t, p]) => t.test(type) && p.test(path))) continue;
    // One finding per property: the first kind of material it holds.
    const what = materialIn(text);
    if (what !== undefined)
      findings.push({
        problem: `${path} holds ${what}, which would sit in clear in the state and in docker inspect`,
        fix: 'pass it as a file written through HostFiles (stdin, pulumi.secret) and mounted read-only; use a *_FILE variable or a --*-file flag',
      });
  }
  return findings;
}

export const secretPolicies = [
  anyResourcePolicy(
    {
      name: 'secrets-in-secret-channels',
      description:
        'Passwords, tokens and private keys travel only as secret values (stdin files, SSH keys), never in clear inputs.',
    },
    (args) => checkSecretPlacement(args.type, args.props),
  ),
];
