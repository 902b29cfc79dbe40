/**
 * Shell text for host commands (local or over SSH), built in one place so quoting is never improvised: every
 * value that reaches a script goes through `shq`.
 */

/** POSIX single-quote quoting: safe for any string, including quotes and newlines. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `sudo -n ` when the target needs it (never prompts: a missing sudo rule fails loudly instead of hanging). */
export function sudoPrefix(sudo: boolean): string {
  return sudo ? 'sudo -n ' : '';
}

export interface HostFile {
  /** File name inside the directory; may contain sub-directories (`rules/chatmirror.yml`). */
  name: string;
  content: string;
  /** Octal mode, e.g. `0640`. */
  mode: string;
}

const FILE_NAME = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
/** The names the last write put in a directory, so the next one removes those no longer listed. */
export const MANIFEST = '.chatmirror-files';
const MODE = /^0[0-7]{3}$/;

/**
 * The stdin of `writeFilesScript`: one line per file, `MODE NAME BASE64`. Base64 keeps any content (PEM, YAML,
 * JSON) on one line, so the script needs nothing but `read` and `base64 -d`; secrets travel on stdin, never on a
 * command line or in the environment where `ps` or the provider's logs could show them.
 */
export function filesToStdin(files: readonly HostFile[]): string {
  for (const file of files) {
    if (!FILE_NAME.test(file.name) || file.name.split('/').includes('..'))
      throw new Error(
        `host file name ${JSON.stringify(file.name)} must be a relative path of [A-Za-z0-9_.-] parts`,
      );
    if (!MODE.test(file.mode))
      throw new Error(`host file ${file.name}: mode must be octal like 0640, got ${file.mode}`);
  }
  return `${files.map((f) => `${f.mode} ${f.name} ${Buffer.from(f.content, 'utf8').toString('base64')}`).join('\n')}\n`;
}

/**
 * Writes the files from stdin into `dir`, each one atomically (a temporary file in the same directory, then
 * `mv`), so a reader (the service's certificate reload, node-exporter's textfile collector) never sees half a
 * file. Files are owned by the invoking user and `group` (which every container runs with), never world-readable.
 * The names written are kept in MANIFEST: a later write removes the files a name was dropped for.
 */
export function writeFilesScript(options: {
  dir: string;
  group: number;
  sudo: boolean;
  dirMode?: string;
}): string {
  const dirMode = options.dirMode ?? '0750';
  if (!/^[0-7]{4}$/.test(dirMode))
    throw new Error(`writeFilesScript: dirMode must be octal like 0750, got ${dirMode}`);
  const sudo = sudoPrefix(options.sudo);
  const group = String(options.group);
  return [
    'set -eu',
    'umask 027',
    `dir=${shq(options.dir)}`,
    `${sudo}install -d -m ${dirMode} "$dir"`,
    `${sudo}chgrp ${group} "$dir"`,
    `manifest="$dir/${MANIFEST}"`,
    'written=$(mktemp)',
    'trap \'rm -f "$written"\' EXIT',
    'while read -r mode name b64; do',
    '  target="$dir/$name"',
    `  ${sudo}install -d -m ${dirMode} "$(dirname "$target")"`,
    `  ${sudo}chgrp ${group} "$(dirname "$target")"`,
    '  tmp="$target.tmp.$$"',
    `  printf '%s' "$b64" | base64 -d | ${sudo}tee "$tmp" >/dev/null`,
    `  ${sudo}chgrp ${group} "$tmp"`,
    `  ${sudo}chmod "$mode" "$tmp"`,
    `  ${sudo}mv -f "$tmp" "$target"`,
    `  printf '%s\\n' "$name" >>"$written"`,
    'done',
    // Files the last run wrote that this one did not (a name dropped from the list) go, and so do the directories
    // they leave empty; entries that could leave the directory are never acted on.
    'if [ -f "$manifest" ]; then',
    '  while IFS= read -r old; do',
    '    case "$old" in \'\'|/*|..|../*|*/..|*/../*|*[!A-Za-z0-9_./-]*) continue ;; esac',
    '    grep -Fxq -- "$old" "$written" && continue',
    `    ${sudo}rm -f "$dir/$old"`,
    '    parent=$(dirname "$old")',
    '    while [ "$parent" != . ]; do',
    `      ${sudo}rmdir "$dir/$parent" 2>/dev/null || break`,
    '      parent=$(dirname "$parent")',
    '    done',
    '  done <"$manifest"',
    'fi',
    `${sudo}tee "$manifest.tmp.$$" <"$written" >/dev/null`,
    `${sudo}chgrp ${group} "$manifest.tmp.$$"`,
    `${sudo}chmod 0640 "$manifest.tmp.$$"`,
    `${sudo}mv -f "$manifest.tmp.$$" "$manifest"`,
  ].join('\n');
}

/** Removes exactly the files written (and the directories left empty), nothing else in `dir`. */
export function removeFilesScript(options: {
  dir: string;
  names: readonly string[];
  sudo: boolean;
  /** Also remove the directories between `dir` and this one (inclusive) that are left empty: the stack's data dir. */
  pruneUpTo?: string;
}): string {
  const sudo = sudoPrefix(options.sudo);
  const paths = options.names.map((name) => shq(`${options.dir}/${name}`)).join(' ');
  const dirs = [
    ...new Set(options.names.map((name) => name.split('/').slice(0, -1).join('/')).filter(Boolean)),
  ]
    .sort((a, b) => b.length - a.length)
    .map((sub) => shq(`${options.dir}/${sub}`));
  return [
    `${sudo}rm -f ${paths} ${shq(`${options.dir}/${MANIFEST}`)}`,
    ...dirs.map((d) => `${sudo}rmdir ${d} 2>/dev/null || true`),
    `${sudo}rmdir ${shq(options.dir)} 2>/dev/null || true`,
    ...parentsUpTo(options.dir, options.pruneUpTo).map((d) => `${sudo}rmdir ${shq(d)} 2>/dev/null || true`),
  ].join('\n');
}

/** `/a/b/c/d` up to `/a/b` → [`/a/b/c`, `/a/b`]; nothing when `root` is not an ancestor of `dir`. */
function parentsUpTo(dir: string, root: string | undefined): string[] {
  if (root === undefined) return [];
  const base = root.replace(/\/+$/, '');
  if (!dir.startsWith(`${base}/`)) return [];
  const parents: string[] = [];
  for (
    let d = dir.slice(0, dir.lastIndexOf('/'));
    d.length >= base.length;
    d = d.slice(0, d.lastIndexOf('/'))
  )
    parents.push(d);
  return parents;
}

/**
 * Checks a model directory the way the engine will: first the manifest against the pinned hash from config, then
 * every file it lists (`--strict` refuses a malformed manifest). Runs on the target host before any container
 * that mounts the directory is created.
 */
export function verifyModelScript(options: { dir: string; manifestSha256: string }): string {
  return [
    'set -eu',
    `cd ${shq(options.dir)}`,
    `printf '%s  SHA256SUMS\\n' ${shq(options.manifestSha256)} | sha256sum --check --strict --quiet - || { echo "SHA256SUMS in ${options.dir.replace(/["$`\\]/g, '')} does not match model.manifestSha256" >&2; exit 1; }`,
    'sha256sum --check --strict --quiet SHA256SUMS',
    `echo verified ${shq(options.manifestSha256)}`,
  ].join('\n');
}

/**
 * Sets Grafana's admin password to the one on stdin (one line), through Grafana's CLI inside the running container
 * (`docker exec -i`, as the container's own user, on its data volume): the password travels on stdin only, never on
 * a command line. Fails on an empty password rather than setting one.
 */
export function grafanaPasswordScript(container: string): string {
  return [
    'set -eu',
    // printf is the shell's builtin: the password is in no process's arguments.
    'IFS= read -r password || true',
    '[ -n "$password" ] || { echo \'grafanaAdminPassword is empty\' >&2; exit 1; }',
    `printf '%s\\n' "$password" | docker exec -i ${shq(container)} grafana cli --homepath /usr/share/grafana admin reset-admin-password --password-from-stdin >/dev/null`,
    `echo ${shq(`admin password of ${container} set`)}`,
  ].join('\n');
}
