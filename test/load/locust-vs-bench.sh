#!/usr/bin/env bash
# The independent load test: locust (pinned, hash-checked, in its own venv: test/load/setup.sh) and
# `chatmirror bench` against the same real server at the same load; their request rate and TTFT/E2EL
# percentiles must agree within the tolerances in test/load/locust-vs-bench.ts. About 90 s.
#
#   bash test/load/locust-vs-bench.sh [--json FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
locust="$(bash test/load/setup.sh)"
exec node --import tsx test/load/locust-vs-bench.ts "$locust" "$@"
