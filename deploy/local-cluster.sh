#!/usr/bin/env bash
# A local Tessera cluster to try scale-out: three nodes behind haproxy over
# a throw-away PostgreSQL, all on 127.0.0.1.
#
#   deploy/local-cluster.sh          # start (or: deploy/local-cluster.sh start)
#   deploy/local-cluster.sh status   # the nodes' and the balancer's readiness
#   deploy/local-cluster.sh stop     # stop everything and delete its files
#
# Start installs haproxy from Debian's packages if it is missing (that needs
# root; so does installing PostgreSQL, which .ci/postgres.sh does when no
# server is found), starts PostgreSQL with .ci/postgres.sh, builds the
# release binary, starts the nodes on 127.0.0.1:9201-9203 and haproxy on
# 127.0.0.1:9200, balancing round-robin over the nodes that answer
# GET /_tessera/ready with 200. The superuser is `elastic` with the password
# from TESSERA_BOOTSTRAP_PASSWORD (default: changeme).
#
# Settings (environment): TESSERA_BOOTSTRAP_PASSWORD; TESSERA_CLUSTER_STATE
# (where pids, logs and configuration go; default
# ${TMPDIR:-/tmp}/tessera-local-cluster); TESSERA_CLUSTER_PORT (the
# balancer's port, default 9200; nodes use the next three). `start` records
# the port in the state folder, so `status` and `stop` need not be told it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${TESSERA_CLUSTER_STATE:-${TMPDIR:-/tmp}/tessera-local-cluster}
PASSWORD=${TESSERA_BOOTSTRAP_PASSWORD:-changeme}
# The port given, else the one the running cluster was started with.
if [[ -n ${TESSERA_CLUSTER_PORT:-} ]]; then
    LB_PORT=$TESSERA_CLUSTER_PORT
elif [[ ${1:-start} != start && -f $STATE/port ]]; then
    LB_PORT=$(cat "$STATE/port")
else
    LB_PORT=9200
fi
NODES=3
# The PostgreSQL cluster is this script's own, recorded in its state folder.
export TESSERA_PG_STATE=$STATE/postgres.state

log() { echo "local-cluster: $*" >&2; }
die() {
    log "$*"
    exit 1
}

node_port() { echo $((LB_PORT + $1)); }

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits until `curl URL` gives HTTP 200, for at most $2 seconds.
wait_200() {
    local url=$1 seconds=$2 i
    for ((i = 0; i < seconds * 10; i++)); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

find_haproxy() {
    command -v haproxy 2>/dev/null || { [[ -x /usr/sbin/haproxy ]] && echo /usr/sbin/haproxy; }
}

ensure_haproxy() {
    local bin
    if bin=$(find_haproxy); then
        echo "$bin"
        return 0
    fi
    log "haproxy is not installed; installing the Debian package"
    [[ $(id -u) -eq 0 ]] || die "installing haproxy needs root: apt-get install haproxy, then retry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends haproxy >&2
    # This script runs an instance of its own with its own configuration;
    # the package's service, if the system started it, is left alone.
    bin=$(find_haproxy) || die "haproxy was installed but not found"
    echo "$bin"
}

# Stops the process whose pid is in file $1: SIGTERM, then SIGKILL after 10 s.
stop_pidfile() {
    local file=$1 pid i
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

stop() {
    if [[ ! -d $STATE ]]; then
        log "nothing to stop ($STATE does not exist)"
        return 0
    fi
    stop_pidfile "$STATE/haproxy.pid"
    local i
    for ((i = 1; i <= NODES; i++)); do
        stop_pidfile "$STATE/node$i.pid"
    done
    if [[ -f $TESSERA_PG_STATE ]]; then
        bash "$ROOT/.ci/postgres.sh" stop
    fi
    rm -rf "$STATE"
    log "stopped"
}

status() {
    local i port code
    for ((i = 1; i <= NODES; i++)); do
        port=$(node_port "$i")
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$port/_tessera/ready" || true)
        echo "node$i  127.0.0.1:$port  ready: $code"
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$LB_PORT/_tessera/ready" || true)
    echo "haproxy 127.0.0.1:$LB_PORT  ready: $code"
}

start() {
    if [[ -f $STATE/haproxy.pid ]]; then
        die "a cluster is already recorded in $STATE; run '$0 stop' first"
    fi
    command -v curl >/dev/null || die "curl is needed"
    local port i
    for ((i = 0; i <= NODES; i++)); do
        port=$((LB_PORT + i))
        if port_in_use "$port"; then
            die "port $port is in use; set TESSERA_CLUSTER_PORT to another base port"
        fi
    done

    local haproxy
    haproxy=$(ensure_haproxy)
    mkdir -p "$STATE"
    echo "$LB_PORT" >"$STATE/port"

    log "starting PostgreSQL"
    local exports
    exports=$(bash "$ROOT/.ci/postgres.sh" start)
    eval "$exports"
    local store=$TESSERA_TEST_POSTGRES_URL

    log "building the release binary (cargo build --release -p tessera)"
    (cd "$ROOT" && cargo build --release -p tessera >&2)
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    local bin=$target/release/tessera
    [[ -x $bin ]] || die "$bin was not built"

    for ((i = 1; i <= NODES; i++)); do
        port=$(node_port "$i")
        log "starting node$i on 127.0.0.1:$port (log: $STATE/node$i.log)"
        # Its own session, so it outlives this script; the store URL goes
        # through the environment, not the command line. Every node names
        # the balancer as the OAuth issuer.
        TESSERA_STORE=$store TESSERA_BOOTSTRAP_PASSWORD=$PASSWORD TESSERA_LOG=${TESSERA_LOG:-info} NO_COLOR=1 \
            setsid "$bin" serve \
            --listen "127.0.0.1:$port" \
            --issuer "http://127.0.0.1:$LB_PORT" \
            --data-dir "$STATE/node$i" \
            </dev/null >"$STATE/node$i.log" 2>&1 &
        echo $! >"$STATE/node$i.pid"
    done
    for ((i = 1; i <= NODES; i++)); do
        port=$(node_port "$i")
        if ! wait_200 "http://127.0.0.1:$port/_tessera/ready" 60; then
            tail -n 30 "$STATE/node$i.log" >&2 || true
            die "node$i did not become ready; '$0 stop' cleans up"
        fi
    done

    {
        cat <<EOF
# Written by deploy/local-cluster.sh.
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    # Longer than Tessera's request timeout (30 s by default).
    timeout server 60s
    # Only a failed connection is retried (haproxy's default retry-on), on
    # another node: the request never reached the first one.
    retries 2
    option redispatch

frontend tessera
    bind 127.0.0.1:$LB_PORT
    default_backend tessera_nodes

backend tessera_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /_tessera/ready
    http-check expect status 200
    default-server inter 1s fall 2 rise 1
EOF
        for ((i = 1; i <= NODES; i++)); do
            echo "    server node$i 127.0.0.1:$(node_port "$i") check"
        done
    } >"$STATE/haproxy.cfg"
    "$haproxy" -c -q -f "$STATE/haproxy.cfg" || die "haproxy rejected $STATE/haproxy.cfg"
    log "starting haproxy on 127.0.0.1:$LB_PORT"
    "$haproxy" -D -f "$STATE/haproxy.cfg" -p "$STATE/haproxy.pid"
    wait_200 "http://127.0.0.1:$LB_PORT/_tessera/ready" 30 || die "haproxy does not answer on port $LB_PORT"

    cat <<EOF

Tessera is running: three nodes behind haproxy on http://127.0.0.1:$LB_PORT
  superuser:  elastic / $PASSWORD
  nodes:      127.0.0.1:$(node_port 1), :$(node_port 2), :$(node_port 3) (logs in $STATE)
  PostgreSQL: ${store}

Try:
  curl -s -u elastic:$PASSWORD http://127.0.0.1:$LB_PORT/_security/_authenticate
  curl -s -u elastic:$PASSWORD -X POST http://127.0.0.1:$LB_PORT/_security/oauth2/token \\
    -H 'Content-Type: application/json' -d '{"grant_type":"client_credentials"}'

Stop it with: $0 stop
EOF
}

case ${1:-start} in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 [start|status|stop]" >&2
    exit 2
    ;;
esac
