#!/usr/bin/env bash
# Installs the policy pack's own dependencies from policies/package-lock.json into policies/node_modules. The
# pack is its own npm project, not a workspace of the root: the Pulumi CLI starts it with policies/ as working
# directory and it must find @pulumi/pulumi/cmd/run-policy-pack, @pulumi/policy and tsx there, as the pack
# pins them, whatever the root installs. Run before the root's typecheck (tsconfig.json includes policies/**)
# and tests (test/policies/ imports the pack).
set -euo pipefail
cd "$(dirname "$0")/../.."
ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix policies --no-audit --no-fund
