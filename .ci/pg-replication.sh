#!/usr/bin/env bash
# A throw-away PostgreSQL primary with one synchronous streaming standby,
# for the failover test of the cluster suite (docs/deployment.md explains
# the setup it mirrors).
#
#   eval "$(bash .ci/pg-replication.sh start)"  # exports the two ports
#   bash .ci/pg-replication.sh kill-primary     # SIGKILL the primary and its backends
#   bash .ci/pg-replication.sh promote          # the standby becomes the primary
#   bash .ci/pg-replication.sh stop             # stops both, deletes their files
#
# Both run on 127.0.0.1 with trust authentication (superuser `postgres`).
# The primary waits for the standby on every commit
# (`synchronous_standby_names = '*'`, `synchronous_commit = on`), so a
# commit the primary acknowledged is on the standby's disk. The standby
# does not wait for anyone once promoted. Settings (environment):
# TESSERA_PGREP_STATE (the state file), TESSERA_PG_PORT (first port tried).
set -euo pipefail

export TESSERA_PG_STATE=${TESSERA_PGREP_STATE:-${TMPDIR:-/tmp}/tessera-pg-replication.state}
# shellcheck source=.ci/postgres.sh
source "$(dirname "$0")/postgres.sh"
STATE=$TESSERA_PG_STATE

psql_at() {
    "$BINDIR/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc "$2"
}

start_replication() {
    if [[ -f $STATE ]]; then
        stop_replication
    fi
    BINDIR=$(ensure_installed)
    SERVER_USER=$(server_user)
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pg.XXXXXX")
    chmod 755 "$DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$SERVER_USER" "$DIR"
    fi
    PRIMARY_PORT=$(free_port)
    FIRST_PORT=$((PRIMARY_PORT + 1))
    STANDBY_PORT=$(free_port)
    cat >"$STATE" <<STATE
BINDIR='$BINDIR'
SERVER_USER='$SERVER_USER'
DIR='$DIR'
PRIMARY_PORT='$PRIMARY_PORT'
STANDBY_PORT='$STANDBY_PORT'
STATE
    cd "$DIR"

    log "primary on 127.0.0.1:$PRIMARY_PORT in $DIR/primary"
    as_server "$SERVER_USER" "$BINDIR/initdb" -D "$DIR/primary" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        return 1
    }
    cat >>"$DIR/primary/postgresql.conf" <<CONF

# tessera failover test: the primary
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
fsync = on
synchronous_commit = on
max_connections = 200
wal_level = replica
max_wal_senders = 4
synchronous_standby_names = '*'
CONF
    as_server "$SERVER_USER" "$BINDIR/pg_ctl" -D "$DIR/primary" -l "$DIR/primary.log" -w -t 60 start >&2 || {
        cat "$DIR/primary.log" >&2 || true
        return 1
    }

    log "standby on 127.0.0.1:$STANDBY_PORT in $DIR/standby"
    as_server "$SERVER_USER" "$BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
        -D "$DIR/standby" -R -X stream >&2
    cat >>"$DIR/standby/postgresql.conf" <<CONF

# tessera failover test: the standby (these lines win over the primary's)
port = $STANDBY_PORT
synchronous_standby_names = ''
CONF
    as_server "$SERVER_USER" "$BINDIR/pg_ctl" -D "$DIR/standby" -l "$DIR/standby.log" -w -t 60 start >&2 || {
        cat "$DIR/standby.log" >&2 || true
        return 1
    }

    local tries=0
    until [[ $(psql_at "$PRIMARY_PORT" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1 ]]; do
        tries=$((tries + 1))
        if ((tries > 120)); then
            log "the standby did not become synchronous"
            cat "$DIR/standby.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
    log "replicating synchronously"
    echo "export TESSERA_FAILOVER_PRIMARY_PORT=$PRIMARY_PORT TESSERA_FAILOVER_STANDBY_PORT=$STANDBY_PORT"
}

load_state() {
    # shellcheck disable=SC1090
    source "$STATE"
}

kill_primary() {
    load_state
    local pid
    pid=$(head -1 "$DIR/primary/postmaster.pid")
    # The machine dies: the postmaster and every backend at once.
    pkill -KILL -P "$pid" || true
    kill -KILL "$pid"
    log "killed the primary (postmaster $pid)"
}

promote() {
    load_state
    as_server "$SERVER_USER" "$BINDIR/pg_ctl" -D "$DIR/standby" -w -t 60 promote >&2
    local tries=0
    until [[ $(psql_at "$STANDBY_PORT" "SELECT pg_is_in_recovery()") == f ]]; do
        tries=$((tries + 1))
        if ((tries > 120)); then
            log "the standby did not leave recovery"
            return 1
        fi
        sleep 0.5
    done
    log "promoted the standby"
}

stop_replication() {
    if [[ ! -f $STATE ]]; then
        return 0
    fi
    load_state
    for d in standby primary; do
        if [[ -f $DIR/$d/postmaster.pid ]]; then
            (cd "$DIR" && as_server "$SERVER_USER" "$BINDIR/pg_ctl" -D "$DIR/$d" -m immediate -w stop >&2) || true
        fi
    done
    case $DIR in
    "${TMPDIR:-/tmp}"/tessera-pg.*) rm -rf "$DIR" ;;
    esac
    rm -f "$STATE"
    log "stopped"
}

case ${1:-} in
start) start_replication ;;
kill-primary) kill_primary ;;
promote) promote ;;
stop) stop_replication ;;
*)
    echo "usage: $0 start|kill-primary|promote|stop" >&2
    exit 2
    ;;
esac
