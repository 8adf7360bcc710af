#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL started for it:
#   bash .ci/with-postgres.sh cargo test --workspace
# TESSERA_TEST_POSTGRES_URL points at the server while the command runs; the
# server and its files are removed afterwards, whatever the command's result.
#
# Each run has its own state file (unless TESSERA_PG_STATE names one) and
# looks for a free port from its own starting point (unless TESSERA_PG_PORT
# gives one), so two runs on one machine (two `make test`) never share or
# stop each other's server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pg-run.XXXXXX")
export TESSERA_PG_STATE=${TESSERA_PG_STATE:-$run_dir/postgres.state}
export TESSERA_PG_PORT=${TESSERA_PG_PORT:-$((54329 + $$ % 400))}
trap 'bash "$here/postgres.sh" stop; rm -rf "$run_dir"' EXIT
eval "$(bash "$here/postgres.sh" start)"
"$@"
