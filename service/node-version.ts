/**
 * Which Node.js the CLI runs on. The service ships and is tested on the current LTS (the image's Node, pinned in
 * images/base-rootfs.sh; test/platform/node-lts.sh runs the suites on it); package.json's `engines` says what its
 * dependencies declare (openai, @pulumi/pulumi and cookie need Node ≥ 22). Node 20 is past its end of life but
 * still runs the service, so a development machine that has only Node 20 keeps working, told so once per command.
 */

/** The Node.js the service image runs and CI tests on (keep in step with images/base-rootfs.sh). */
export const SHIPPED_NODE_MAJOR = 24;
/** The oldest Node.js whose dependencies all declare support (package.json `engines`). */
export const SUPPORTED_NODE = '22.12';
/** Node 20's end of life, as the Node.js release schedule gives it. */
const NODE_20_END_OF_LIFE = '2026-04-30';

/** One line to print on stderr before running a command, or undefined on a supported Node. */
export function nodeVersionNotice(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return undefined;
  const which = `Node.js ${version}`;
  if (major === 20) {
    return (
      `${which} is past its end of life (${NODE_20_END_OF_LIFE}): it runs chatmirror for development; the ` +
      `service ships and is tested on Node ${SHIPPED_NODE_MAJOR} LTS (supported: ≥ ${SUPPORTED_NODE})`
    );
  }
  return `${which} is not supported: chatmirror needs Node.js ≥ ${SUPPORTED_NODE} (it ships on Node ${SHIPPED_NODE_MAJOR} LTS)`;
}
