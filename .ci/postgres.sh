#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests of tessera-store-postgres.
#
#   eval "$(bash .ci/postgres.sh start)"   # starts it, exports TESSERA_TEST_POSTGRES_URL
#   cargo test -p tessera-store-postgres
#   bash .ci/postgres.sh stop              # stops it and deletes its files
#
# `start` installs PostgreSQL from Debian's packages when no server binaries
# are found, creates a new cluster in a temporary directory (trust
# authentication, superuser `postgres`, fsync on), starts it on 127.0.0.1
# and prints the one `export` line on stdout; everything else goes to
# stderr. A second `start` while the cluster runs prints the same line.
# initdb refuses to run as root, so as root the server runs as the system
# user `postgres` (or `tessera-pg`, created if needed).
#
# Settings (environment): TESSERA_PG_PORT (first port tried, default 54329),
# TESSERA_PG_STATE (where start records the cluster for stop),
# TESSERA_PG_TLS_DIR (opt-in TLS, for the store's TLS tests: a folder with
# server.crt and server.key, and optionally ca.crt; the server then speaks
# TLS (`ssl = on`), accepts TCP connections only over TLS (`hostssl` lines
# alone in pg_hba.conf), lets the role `tessera_cert` in only with a client
# certificate issued by ca.crt, and the export line also names the Unix
# socket's folder, TESSERA_TEST_POSTGRES_SOCKET_DIR, where plain connections
# are still accepted).
set -euo pipefail

STATE_FILE=${TESSERA_PG_STATE:-${TMPDIR:-/tmp}/tessera-postgres.state}
FIRST_PORT=${TESSERA_PG_PORT:-54329}

log() { echo "postgres.sh: $*" >&2; }

# The directory holding initdb, pg_ctl and pg_isready, newest version first.
find_bindir() {
    local dir candidates
    candidates=$(shopt -s nullglob; printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r)
    for dir in $candidates; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/pg_isready ]]; then
            echo "$dir"
            return 0
        fi
    done
    local initdb
    initdb=$(command -v initdb 2>/dev/null) || return 1
    dir=$(dirname "$(readlink -f "$initdb")")
    if [[ -x $dir/pg_ctl && -x $dir/pg_isready ]]; then
        echo "$dir"
        return 0
    fi
    return 1
}

ensure_installed() {
    local bindir
    if bindir=$(find_bindir); then
        echo "$bindir"
        return 0
    fi
    log "no PostgreSQL server binaries found; installing the Debian package"
    if [[ $(id -u) -ne 0 ]]; then
        log "installing needs root; install the 'postgresql' package and retry"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    bindir=$(find_bindir) || {
        log "PostgreSQL was installed but its binaries were not found under /usr/lib/postgresql/*/bin"
        return 1
    }
    echo "$bindir"
}

# The system user the server runs as when we are root.
server_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
    elif id -u postgres >/dev/null 2>&1; then
        echo postgres
    else
        if ! id -u tessera-pg >/dev/null 2>&1; then
            log "creating the system user tessera-pg"
            useradd --system --no-create-home --shell /usr/sbin/nologin tessera-pg >&2
        fi
        echo tessera-pg
    fi
}

# Runs a command as the server user.
as_server() {
    local user=$1
    shift
    if [[ $(id -u) -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$user" -- "$@"
    else
        su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port
    for ((port = FIRST_PORT; port < FIRST_PORT + 200; port++)); do
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    log "no free port in $FIRST_PORT..$((FIRST_PORT + 199))"
    return 1
}

url_for() {
    echo "postgres://postgres@127.0.0.1:$1/postgres"
}

# BINDIR, SERVER_USER, DIR and PORT come from the state file.
# shellcheck disable=SC2153
start() {
    if [[ -f $STATE_FILE ]]; then
        # shellcheck disable=SC1090
        source "$STATE_FILE"
        if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres; then
            log "already running on port $PORT (data in $DIR)"
            echo "export TESSERA_TEST_POSTGRES_URL=$(url_for "$PORT")"
            return 0
        fi
        log "a previous cluster is recorded but does not answer; replacing it"
        stop
    fi

    local bindir user dir port
    bindir=$(ensure_installed)
    user=$(server_user)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pg.XXXXXX")
    chmod 755 "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$user" "$dir"
    fi
    port=$(free_port)
    cd "$dir"

    log "creating a cluster in $dir with $bindir (server user $user)"
    as_server "$user" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    cat >>"$dir/data/postgresql.conf" <<EOF

# tessera test cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = 200
EOF
    if [[ -n ${TESSERA_PG_TLS_DIR:-} ]]; then
        configure_tls "$user" "$dir/data"
    fi
    cat >"$STATE_FILE" <<EOF
BINDIR='$bindir'
SERVER_USER='$user'
DIR='$dir'
PORT='$port'
EOF

    log "starting on 127.0.0.1:$port"
    as_server "$user" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2 || {
        cat "$dir/server.log" >&2 || true
        return 1
    }
    local tries=0
    until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
        tries=$((tries + 1))
        if ((tries > 120)); then
            log "the server did not become ready"
            cat "$dir/server.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    log "ready"
    if [[ -n ${TESSERA_PG_TLS_DIR:-} ]]; then
        echo "export TESSERA_TEST_POSTGRES_URL=$(url_for "$port") TESSERA_TEST_POSTGRES_SOCKET_DIR=$dir"
    else
        echo "export TESSERA_TEST_POSTGRES_URL=$(url_for "$port")"
    fi
}

# TLS on: the certificate and key from TESSERA_PG_TLS_DIR, copied into the
# data folder for the server user (the key readable by it alone, as the
# server demands), and a pg_hba.conf that takes TCP connections over TLS only.
configure_tls() {
    local user=$1 data=$2 f owner=()
    if [[ $(id -u) -eq 0 ]]; then
        owner=(-o "$user")
    fi
    for f in server.crt server.key ca.crt; do
        if [[ -f $TESSERA_PG_TLS_DIR/$f ]]; then
            install "${owner[@]}" -m 600 "$TESSERA_PG_TLS_DIR/$f" "$data/$f"
        fi
    done
    cat >>"$data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
    {
        echo "local all all trust"
        if [[ -f $data/ca.crt ]]; then
            echo "ssl_ca_file = 'ca.crt'" >>"$data/postgresql.conf"
            echo "hostssl all tessera_cert 127.0.0.1/32 cert"
        fi
        echo "hostssl all all 127.0.0.1/32 trust"
    } >"$data/pg_hba.conf"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$user" "$data/pg_hba.conf"
    fi
}

stop() {
    if [[ ! -f $STATE_FILE ]]; then
        log "nothing to stop"
        return 0
    fi
    # shellcheck disable=SC1090
    source "$STATE_FILE"
    if [[ -d $DIR/data ]]; then
        (cd "$DIR" && as_server "$SERVER_USER" "$BINDIR/pg_ctl" -D "$DIR/data" -m fast -w stop >&2) || true
    fi
    case $DIR in
    "${TMPDIR:-/tmp}"/tessera-pg.*) rm -rf "$DIR" ;;
    esac
    rm -f "$STATE_FILE"
    log "stopped"
}

# Sourced (by .ci/pg-replication.sh): the functions only.
return 0 2>/dev/null || true

case ${1:-} in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
