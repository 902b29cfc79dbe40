#!/usr/bin/env bash
# Contract test: schemathesis generates requests from the OpenAPI document the service serves (/openapi.json)
# and checks every response against that same document. It runs against the real `chatmirror serve` process,
# HTTPS with the development certificate as users first meet it, so it covers the CLI, config, TLS and drain
# wiring as well as buildApp.
#
#   bash test/contract/schemathesis.sh       # non-zero exit on any failure; each failure is printed as a curl
#
# Idempotent: creates/reuses the venv ${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}/venv-schemathesis with the
# pinned requirements.txt. Optional env: CONTRACT_SEED, CONTRACT_MAX_EXAMPLES (to explore beyond the CI budget),
# CHATMIRROR_ENGINE_MODEL_DIR (another model; the bundled one by default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE="${CHATMIRROR_CACHE:-$HOME/.cache/chatmirror}"
VENV="$CACHE/venv-schemathesis"
REQ=test/contract/requirements.txt
# A fixed seed: a failure in CI replays locally with the same cases.
SEED="${CONTRACT_SEED:-1}"
# The run is bounded by cases, not by wall time: at most MAX_EXAMPLES generated cases per API operation (the
# --max-examples of schemathesis 4, per operation and phase), so a slow or loaded machine takes longer but runs
# the same cases and passes the same way. 1000 is about 3800 requests, 50-60 s on 2 idle cores with the bundled
# model (100 took 10 s but missed a bug that 400 found).
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-1000}"
STARTUP_TIMEOUT_S=120 # seconds for the engine to load and the server to listen
# No wall-time limit on the run: a hung request fails on its own --request-timeout, and a run in which no request
# completes for STALL_TIMEOUT_S (a hung server or client) is stopped, however long the run as a whole takes.
REQUEST_TIMEOUT_S=60
STALL_TIMEOUT_S="${CONTRACT_STALL_TIMEOUT_S:-180}"
PROGRESS_EVERY=100    # a progress line every this many requests (and at each new operation)
STOP_TIMEOUT_S=15     # seconds for the server to drain on SIGTERM before it is killed

# --- venv ----------------------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.chatmirror-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" >"$STAMP"
fi

# --- server --------------------------------------------------------------------------------------------------
WORK="$(mktemp -d)"
server_pid=""
st_pid=""

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq $((STOP_TIMEOUT_S * 10))); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

on_exit() {
  local status=$?
  if [ -n "${st_pid:-}" ]; then kill -TERM "$st_pid" 2>/dev/null || true; fi
  stop_server
  if [ "$status" -ne 0 ] && [ -s "$WORK/server.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port 0 and the URL read back from the banner: no race for a "free" port. `node --import tsx` rather than
# `npx tsx` keeps the server one process, so SIGTERM reaches it directly. max_tokens is capped at 64 because
# generated requests may ask for any max_tokens (or none: up to the whole context), and n up to 8 choices; 64
# tokens still exercises every stop reason and stream shape while keeping each generation well under a second.
# A user's config file, certificate or public URL would change what is tested, so they are switched off. With no
# credentials configured the server makes a development signing key (in this run's own cache) and prints a
# token, which every request below carries. Per-subject quotas are off: thousands of requests from one subject
# would otherwise be mostly 429s, which the quota tests cover.
env -u CHATMIRROR_SERVER_TLS_CERT_FILE -u CHATMIRROR_SERVER_TLS_KEY_FILE -u CHATMIRROR_SERVER_PUBLIC_BASE_URL \
  CHATMIRROR_CONFIG= \
  CHATMIRROR_CACHE="$WORK" \
  CHATMIRROR_QUOTAS_DEFAULT_REQUESTS_PER_MINUTE=0 \
  CHATMIRROR_QUOTAS_DEFAULT_TOKENS_PER_MINUTE=0 \
  CHATMIRROR_QUOTAS_DEFAULT_CONCURRENT_REQUESTS=0 \
  CHATMIRROR_SERVER_HOST=127.0.0.1 \
  CHATMIRROR_SERVER_PORT=0 \
  CHATMIRROR_SERVER_TLS_ENABLED=true \
  CHATMIRROR_SERVER_TLS_DEV_CERT_DIR="$WORK/dev-tls" \
  CHATMIRROR_LIMITS_MAX_TOKENS_CAP=64 \
  CHATMIRROR_LOG_LEVEL=warn \
  node --import tsx service/cli.ts serve >"$WORK/server.log" 2>&1 &
server_pid=$!

base=""
for _ in $(seq $((STARTUP_TIMEOUT_S * 10))); do
  base="$(sed -n 's|^chatmirror: serving .* at \(https://[^ ]*\)$|\1|p' "$WORK/server.log" | head -n 1)"
  [ -n "$base" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "contract: the server exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "contract: no listening banner within ${STARTUP_TIMEOUT_S} s" >&2
  exit 1
fi
CA="$WORK/dev-tls/cert.pem"
TOKEN="$(sed -n 's|^ *export CHATMIRROR_TOKEN=\(.*\)$|\1|p' "$WORK/server.log" | head -n 1)"
if [ -z "$TOKEN" ]; then
  echo "contract: the banner printed no development token" >&2
  exit 1
fi

# Waits for /ready and prints the served model ids (the model and its aliases), comma-separated.
models="$(
  "$VENV/bin/python" - "$base" "$CA" "$TOKEN" <<'PY'
import json, ssl, sys, time, urllib.request

base, ca, token = sys.argv[1:]
context = ssl.create_default_context(cafile=ca)
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(f"{base}/ready", context=context, timeout=5):
            break
    except OSError as err:  # refused, or 503 until the model is ready (HTTPError is an OSError)
        if time.monotonic() > deadline:
            sys.exit(f"contract: {base}/ready did not answer 200 within 60 s: {err}")
        time.sleep(0.2)
models = urllib.request.Request(f"{base}/v1/models", headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(models, context=context, timeout=5) as response:
    print(",".join(model["id"] for model in json.load(response)["data"]))
PY
)"

# --- schemathesis --------------------------------------------------------------------------------------------
# Test data, not a relaxation of the contract: random `model` strings are all 404 model_not_found, so without
# the served ids almost no generated request would reach the engine (other ids still come as negative cases);
# and the schema has no examples, while most random bodies are refused by name (tools, roles, response_format),
# so these examples make every run validate a JSON and a streamed 200 of both generation endpoints.
cat >"$WORK/contract_hooks.py" <<'PY'
import os
import sys
import time

import schemathesis

MODELS = os.environ["CONTRACT_MODEL_IDS"].split(",")
EXAMPLES = {
    "/v1/chat/completions": {
        "plain": {
            "model": MODELS[0],
            "messages": [{"role": "user", "content": "Continue: In the beginning"}],
            "max_tokens": 8,
        },
        "stream": {
            "model": MODELS[-1],
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "床前明月光"}],
            "max_tokens": 8,
            "n": 2,
            "seed": 7,
            "logprobs": True,
            "top_logprobs": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    "/v1/completions": {
        "plain": {"model": MODELS[0], "prompt": "In the beginning", "max_tokens": 8, "logprobs": 2},
        "stream": {
            "model": MODELS[0],
            "prompt": ["And God said", "白日依山尽"],
            "max_tokens": 8,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
}


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    for url, path_item in raw_schema.get("paths", {}).items():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for param in operation.get("parameters", []):
                if param.get("in") == "path" and param.get("name") == "model":
                    param["schema"]["enum"] = MODELS
            for media in operation.get("requestBody", {}).get("content", {}).values():
                properties = media.get("schema", {}).get("properties", {})
                if "model" in properties:
                    properties["model"]["enum"] = MODELS
                if url in EXAMPLES:
                    media["examples"] = {name: {"value": value} for name, value in EXAMPLES[url].items()}


# Progress: schemathesis prints nothing until an operation's phase ends when its output is not a terminal (CI),
# so a slow run looked hung. A line on stderr at each new operation and every CONTRACT_PROGRESS_EVERY requests,
# and the time of the last completed request in CONTRACT_PROGRESS_FILE, which the script's stall watchdog reads.
PROGRESS_FILE = os.environ["CONTRACT_PROGRESS_FILE"]
PROGRESS_EVERY = int(os.environ["CONTRACT_PROGRESS_EVERY"])
_progress = {"calls": 0, "label": None, "own": 0, "started": time.monotonic()}


@schemathesis.hook
def after_call(ctx, case, response):
    _progress["calls"] += 1
    label = case.operation.label
    if label != _progress["label"]:
        _progress["label"] = label
        _progress["own"] = 0
        _say(f"now {label}")
    _progress["own"] += 1
    if _progress["calls"] % PROGRESS_EVERY == 0:
        _say(f"{label}: {_progress['own']} requests")
    with open(PROGRESS_FILE, "w") as f:
        f.write(str(_progress["calls"]))


def _say(what):
    elapsed = time.monotonic() - _progress["started"]
    print(f"contract: {_progress['calls']} requests, {elapsed:.0f} s; {what}", file=sys.stderr, flush=True)
PY

# An explicit config file, so a schemathesis.toml found in the repo or a parent cannot change the run; it turns
# off the crash cache, which schemathesis otherwise writes to ./.schemathesis (inside the repository) and replays
# on the next run.
cat >"$WORK/schemathesis.toml" <<'TOML'
[cache]
enabled = false
TOML

# Checks: no 5xx; status codes, content types and bodies (JSON, and each SSE event) as documented; schema-invalid
# requests refused with a 4xx; undocumented methods answered 405 with a matching Allow. Not
# positive_data_acceptance: the schema accepts OpenAI fields this server refuses by name on purpose.
# --output-sanitize false: otherwise every field named like a token (max_tokens) shows as [Filtered] in the
# printed curl, which then does not replay. No example database, and hypothesis's other caches in the temporary
# directory, so runs depend on the seed alone and write nothing into the repository.
echo "contract: schemathesis against $base (models: $models, seed $SEED, at most $MAX_EXAMPLES cases per operation)"
PROGRESS="$WORK/progress"
: >"$PROGRESS"
PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=contract_hooks CONTRACT_MODEL_IDS="$models" \
  CONTRACT_PROGRESS_FILE="$PROGRESS" CONTRACT_PROGRESS_EVERY="$PROGRESS_EVERY" \
  HYPOTHESIS_STORAGE_DIRECTORY="$WORK/hypothesis" \
  "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$base/openapi.json" \
  --tls-verify "$CA" \
  --header "Authorization: Bearer $TOKEN" \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout "$REQUEST_TIMEOUT_S" \
  --continue-on-failure \
  --output-sanitize false \
  --no-color &
st_pid=$!

# The stall watchdog: the progress file is rewritten after every request; if it stays untouched for
# STALL_TIMEOUT_S, schemathesis is stopped and the run fails, saying so.
stalled=0
while kill -0 "$st_pid" 2>/dev/null; do
  sleep 1
  idle=$(($(date +%s) - $(stat -c %Y "$PROGRESS")))
  if [ "$idle" -ge "$STALL_TIMEOUT_S" ]; then
    stalled=1
    echo "contract: no request completed for ${STALL_TIMEOUT_S} s ($(cat "$PROGRESS" || true) done): stopping schemathesis" >&2
    kill -TERM "$st_pid" 2>/dev/null || true
    break
  fi
done
status=0
wait "$st_pid" || status=$?
if [ "$stalled" -eq 1 ] && [ "$status" -eq 0 ]; then status=1; fi
echo "contract: schemathesis finished with status $status after $(cat "$PROGRESS" || true) requests"

# A failure after the headers (an error event in a 200 stream) is no 5xx; the server logs it at error level.
if grep -E '"level":(50|60)' "$WORK/server.log" >&2; then
  echo "contract: the server logged errors (above) during the run" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
