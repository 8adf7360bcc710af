#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL started for it:
#   bash .ci/with-postgres.sh cargo test --workspace
# TESSERA_TEST_POSTGRES_URL points at the server while the command runs; the
# server and its files are removed afterwards, whatever the command's result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eval "$(bash "$here/postgres.sh" start)"
trap 'bash "$here/postgres.sh" stop' EXIT
"$@"
