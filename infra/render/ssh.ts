/**
 * SSH options for a remote target, for every client this program starts (the Docker provider's `ssh://` host,
 * the facts probe): the pinned host key is the ONLY key accepted. Known-hosts files are switched off and
 * KnownHostsCommand prints the pinned line, so a changed host key fails the connection instead of being
 * learned (StrictHostKeyChecking=yes; never `no`, never `accept-new`).
 */
import type { StackScope } from './capacity.js';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  hostKey: string;
  /** Already expanded (no `~`). */
  privateKeyPath?: string;
}

export function knownHostsLine(t: Pick<SshTarget, 'host' | 'port' | 'hostKey'>): string {
  const name = t.port === 22 ? t.host : `[${t.host}]:${t.port}`;
  return `${name} ${t.hostKey}`;
}

export function sshOptions(t: SshTarget): string[] {
  return [
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `KnownHostsCommand=/bin/echo ${knownHostsLine(t)}`,
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=15',
    '-p',
    String(t.port),
    ...(t.privateKeyPath === undefined ? [] : ['-o', 'IdentitiesOnly=yes', '-i', t.privateKeyPath]),
  ];
}

export function dockerHostUrl(t: Pick<SshTarget, 'host' | 'user' | 'port'>): string {
  return `ssh://${t.user}@${t.host}:${t.port}`;
}

/** A command line that runs `script` (given on stdin) on the target with the pinned options. */
export function sshCommandLine(t: SshTarget): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return ['ssh', ...sshOptions(t).map(quote), quote(`${t.user}@${t.host}`), quote('sh -s')].join(' ');
}

/** Host facts as one JSON line: the same facts systeminformation gives for the local host. */
export function hostFactsScript(dockerDataPath: string, stack?: StackScope): string {
  const path = `'${dockerDataPath.replace(/'/g, `'\\''`)}'`;
  return [
    'set -eu',
    ...(stack === undefined ? ["held='null'"] : heldScript(path, stack)),
    'cores=$(nproc)',
    'mem=$(awk \'/^MemTotal:/ {printf "%.0f", $2 * 1024}\' /proc/meminfo)',
    `disk=$(df -P -B1 ${path} 2>/dev/null | awk 'NR == 2 {print $4}' || echo 0)`,
    "docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)",
    "api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null || true)",
    // The daemon's own hard nofile limit: a container cannot be given more (/proc/PID/limits is world-readable).
    "dpid=$(pidof dockerd 2>/dev/null | cut -d' ' -f1 || true)",
    'nofile=$([ -n "$dpid" ] && awk \'/^Max open files/ {print $5}\' /proc/$dpid/limits 2>/dev/null || true)',
    "gpus=$(nvidia-smi -L 2>/dev/null | sed 's/\"//g' | paste -sd '|' - || true)",
    `printf '{"cpuCores":%s,"memoryBytes":%s,"diskFreeBytes":%s,"diskPath":"%s","dockerVersion":"%s","dockerApiVersion":"%s","dockerNofileHard":"%s","gpus":"%s","held":%s}\\n' "$cores" "$mem" "\${disk:-0}" ${path} "$docker" "$api" "$nofile" "$gpus" "$held"`,
  ].join('\n');
}

/**
 * What the stack already holds where Docker keeps its data (capacity.ts StackHoldings), as `$held`: the images
 * present with their repo digests and exact sizes (`docker image inspect`), the stack's labelled volumes (sizes from
 * `docker system df -v`, which prints them in decimal units: 4 significant digits), and its data dir when it is on
 * the same filesystem (`du`; what the user cannot read is not counted).
 */
function heldScript(path: string, stack: StackScope): string[] {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return [
    `stack=${q(stack.name)}`,
    `ddir=${q(stack.dataDir)}`,
    "imgs=$(docker image ls -q --no-trunc 2>/dev/null | sort -u | tr '\\n' ' ' || true)",
    `images=$([ -n "$imgs" ] && docker image inspect --format '{"digests":{{json .RepoDigests}},"bytes":{{.Size}}}' $imgs 2>/dev/null | paste -sd, - || true)`,
    `vols=$(docker system df -v --format '{{range .Volumes}}{{.Labels}}{{"\\t"}}{{.Size}}{{println}}{{end}}' 2>/dev/null | awk -F '\\t' -v want="chatmirror.stack=$stack" 'function b(s, u) { u = s; sub(/^[0-9.]+/, "", u); return (s + 0) * (u == "kB" ? 1e3 : u == "MB" ? 1e6 : u == "GB" ? 1e9 : u == "TB" ? 1e12 : u == "PB" ? 1e15 : 1) } { n = split($1, l, ","); for (i = 1; i <= n; i++) if (l[i] == want) { t += b($2); break } } END { printf "%.0f", t }' || true)`,
    'dd=0',
    `if [ -d "$ddir" ] && [ "$(stat -c %d "$ddir")" = "$(stat -c %d ${path} 2>/dev/null || true)" ]; then dd=$(du -sb "$ddir" 2>/dev/null | cut -f1 || true); fi`,
    `held=$(printf '{"images":[%s],"volumesBytes":%s,"dataDirBytes":%s}' "$images" "\${vols:-0}" "\${dd:-0}")`,
  ];
}
