#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API, driven by its OpenAPI document:
# starts `tessera serve` (the debug binary) on a throw-away data directory,
# runs schemathesis (pinned in .ci/schemathesis/requirements.txt, in a venv
# under target/) over every operation with a dedicated superuser, and stops
# the server. Fails on any 5xx, any status code or body the document does
# not describe.
#
#   bash .ci/schemathesis.sh            # SCHEMATHESIS_EXAMPLES per operation (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if ! command -v curl >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates
fi

venv=target/schemathesis-venv
requirements=.ci/schemathesis/requirements.txt
if [ ! -f "$venv/.installed" ] || ! cmp -s "$requirements" "$venv/.installed"; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    cp "$requirements" "$venv/.installed"
fi

cargo build -q -p tessera --bin tessera
bin="${CARGO_TARGET_DIR:-target}/debug/tessera"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_pw="schemathesis-bootstrap-$RANDOM$RANDOM"
fuzzer="fuzzer-$RANDOM$RANDOM"
fuzzer_pw="schemathesis-fuzzer-$RANDOM$RANDOM"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The fuzzer sends wrong passwords and unknown clients by design: no
# throttling, so that its own requests are never answered 429.
TESSERA_BOOTSTRAP_PASSWORD="$admin_pw" \
TESSERA_LOCKOUT_THRESHOLD=1000 \
TESSERA_LOCKOUT_DELAYS=1ms \
TESSERA_SOURCE_FAILURE_BURST=10000000 \
TESSERA_SOURCE_FAILURE_RATE=1000000 \
TESSERA_LOG=warn \
    "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!

for _ in $(seq 1 100); do
    if curl -fsS "$base/_tessera/ready" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then cat "$work/server.log"; exit 1; fi
    sleep 0.1
done
curl -fsS "$base/_tessera/ready" >/dev/null

# A superuser of its own, with a name the fuzzer cannot guess, so that
# whatever it does to a user by name (delete, disable, change the password;
# `elastic` or the word "schemathesis", which it tries as a value) cannot
# lock it out.
curl -fsS -u "elastic:$admin_pw" -X PUT "$base/_security/user/$fuzzer" \
    -H 'Content-Type: application/json' \
    -d "{\"password\":\"$fuzzer_pw\",\"roles\":[\"superuser\"]}" >/dev/null
curl -fsS -u "$fuzzer:$fuzzer_pw" "$base/_tessera/openapi.json" -o "$work/openapi.json"

# One worker: with two, hypothesis describes lambdas with `ast.parse` on
# two threads at once, and CPython 3.11 keeps the AST validator's recursion
# depth per interpreter, not per thread, so the fuzzer itself can crash
# ("AST constructor recursion depth mismatch").
# Excluded: changing the caller's own password (it would lock the fuzzer
# out mid-run). Every other operation, destructive ones included, runs.
status=0
"$venv/bin/schemathesis" --config-file .ci/schemathesis/schemathesis.toml --no-color \
    run "$work/openapi.json" \
    --url "$base" \
    --auth "$fuzzer:$fuzzer_pw" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --exclude-path /_security/user/_password \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" \
    --phases examples,coverage,fuzzing \
    --workers 1 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --generation-with-security-parameters false \
    --report junit,har --report-dir target/schemathesis-report \
    "$@" \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "== server log"
    tail -n 50 "$work/server.log"
fi
exit "$status"
