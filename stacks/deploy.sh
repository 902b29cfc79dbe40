#!/usr/bin/env bash
# `npm run up` / `npm run down`: deploy or remove a stack (default: local) with the Pulumi CLI, keeping its state
# on this machine (a file:// backend under .chatmirror/state, no Pulumi Cloud account) and its secrets encrypted
# with a passphrase kept beside that state.
#
#   up:   builds the images or reuses them (images/build.sh writes images/digests.json, which the stack reads),
#         generates the secrets the stack needs when they are missing (metricsToken; grafanaAdminPassword when
#         monitoring.grafana is on; benchToken when benchmarks are on) into the stack's encrypted config, then
#         `pulumi up`.
#   down: `pulumi destroy`.
#
# Environment: STACK (default local), CHATMIRROR_STATE (default <project>/.chatmirror/state),
# PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE (default: a generated file in the state directory).
set -euo pipefail

action=${1:-}
case "$action" in
  up | down) ;;
  *)
    echo "usage: stacks/deploy.sh up|down   (npm run up / npm run down; STACK=local|staging|prod)" >&2
    exit 2
    ;;
esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stack=${STACK:-local}

if ! command -v pulumi >/dev/null 2>&1; then
  # The provider plugins at the versions the installed SDK packages name (package.json pins those).
  plugins=$(for name in docker command tls; do
    version=$(node -p "require('$repo/node_modules/@pulumi/$name/package.json').pulumi.version" 2>/dev/null || echo '?')
    printf '  pulumi plugin install resource %s %s\n' "$name" "$version"
  done)
  cat >&2 <<EOF
npm run $action needs the Pulumi CLI, and there is no \`pulumi\` on PATH.
Install it (https://www.pulumi.com/docs/iac/download-install/), e.g.
  curl -fsSL https://get.pulumi.com | sh      # then add ~/.pulumi/bin to PATH
and the providers the program uses, at the versions package.json pins:
$plugins
(\`pulumi up\` also installs them itself where it can reach get.pulumi.com and GitHub.)
Without the CLI, \`npm start\` serves the bundled model directly, and CHATMIRROR_E2E=1 npx vitest run test/e2e
(after bash images/build.sh) creates what the local stack declares on the local dockerd.
EOF
  exit 3
fi

state=${CHATMIRROR_STATE:-$repo/.chatmirror/state}
mkdir -p "$state"
chmod 700 "$state"
export PULUMI_BACKEND_URL="file://$state"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
  if [ ! -s "$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
    echo "stacks/deploy.sh: generated the secrets passphrase in $PULUMI_CONFIG_PASSPHRASE_FILE (keep it: it decrypts the stack's secrets)" >&2
  fi
fi

cd "$repo"
pulumi stack select --create --secrets-provider passphrase "$stack" >/dev/null

if [ "$action" = down ]; then
  exec pulumi destroy --yes --stack "$stack"
fi

if [ "$stack" = local ]; then
  bash images/build.sh
fi

# config_get KEY: the value (decrypted) or nothing.
config_get() { pulumi config get --stack "$stack" --path "$1" 2>/dev/null || true; }
missing() { [ -z "$(config_get "$1")" ]; }
set_secret() { printf '%s' "$2" | pulumi config set --stack "$stack" --secret "$1" >/dev/null; echo "stacks/deploy.sh: generated $1 into the stack's encrypted config" >&2; }
api_key() { npx tsx service/cli.ts keygen --api-key "$1" --scope "$2" | grep '^cmk_'; }

monitoring=$(config_get chatmirror:monitoring.enabled)
if [ "$monitoring" != false ] && missing chatmirror:metricsToken; then
  set_secret metricsToken "$(api_key prometheus metrics:read)"
fi
if [ "$monitoring" != false ] && [ "$(config_get chatmirror:monitoring.grafana)" != false ] && missing chatmirror:grafanaAdminPassword; then
  set_secret grafanaAdminPassword "$(head -c 18 /dev/urandom | base64)"
fi
if [ "$(config_get chatmirror:benchmarks.enabled)" = true ] && missing chatmirror:benchToken; then
  set_secret benchToken "$(api_key bench 'chat completions models:read')"
fi

exec pulumi up --yes --stack "$stack"
