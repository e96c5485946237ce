#!/usr/bin/env bash
# Benchmarks a local VoiceFlow cluster (scripts/cluster) with
# `voiceflow-loadgen --scenario cluster`. Figures are printed as `name: value unit` lines,
# each run preceded by the exact commands (`+ ...`).
#
#   VOICEFLOW_CQL=127.0.0.1:19042 scripts/bench-cluster.sh [extra loadgen flags for every run]
#
# Builds node and loadgen in release mode, then, each on a fresh cluster in its own
# directory under BENCH_DIR (stopped with `scripts/cluster down` afterwards, also on error):
#
#   baseline  `scripts/cluster up 1`; `--cluster-part latency` with one URL: LAT_ROOMS rooms,
#             each with a sender and a receiver session on the single node, LAT_RATE msg/s
#             per room for LAT_DURATION s. The 1-node reference for the figures below.
#   latency   `scripts/cluster up 3`; the same load with 3 URLs. Half of the rooms have
#             sender and receiver on the SAME entry node (cluster.same_entry.*), half on
#             two DIFFERENT entry nodes (cluster.diff_entry.*). A room's owner is chosen by
#             rendezvous hashing inside the cluster and can be any node, so "same entry
#             node" still crosses nodes 2/3 of the time with 3 nodes (client node -> owner
#             -> client node), and "different entry nodes" always crosses at least once.
#             Latency added by crossing nodes = these figures minus the baseline's. Also
#             inter-node bytes/s (voiceflow_cluster_bytes_sent_total), deliveries/s
#             (voiceflow_deliveries_total and as counted by the receivers), and deliveries
#             per node CPU-second (utime+stime of the node pids over the same window).
#   churn     `scripts/cluster up 3`; `--cluster-part churn`: CHURN_ROOMS rooms, a receiver
#             and a sender each, spread over the 3 nodes; each room gets one probe every
#             PROBE_MS ms (one in flight, re-sent with its nonce after 2 s or an error).
#             After a steady phase the loadgen runs `scripts/cluster add` (node 4 joins
#             live; join.*: time until every room delivered a probe sent after node 4
#             appeared in GET /cluster owners), then `scripts/cluster kill KILL_NODE`
#             (kill.*: time until every room whose clients were on surviving nodes, then
#             every room, delivered a probe sent after the kill: kill.*_rooms_probe_*;
#             and until each acknowledged a send attempt made after the kill, a resend
#             included: kill.*_rooms_served_*, with p50/p90/p99/max and the rooms over 5 s;
#             longest gap between acks per room). churn.lost / churn.duplicated must be 0.
#
# The time resolution of join.* and kill.* is the probe interval (PROBE_MS). The CQL store
# (Cassandra 2.1 through a bridge on this 2-core host) manages ~1,000-1,500 stored
# messages/s, so the defaults stay at or below 500 msg/s. Nodes, Cassandra and the
# generator share the cores; nothing is pinned with taskset.
#
# Environment:
#   VOICEFLOW_CQL   CQL contact point of a running server (else scripts/cluster starts one)
#   BENCH_DIR       cluster directories [default: target/bench-cluster, wiped at start]
#   PARTS           parts to run, in order [default: "baseline latency churn"]
#   LAT_ROOMS (200), LAT_RATE (2), LAT_DURATION (20), CHURN_ROOMS (1000), PROBE_MS (2000),
#   SETTLE_SECS (10), KILL_NODE (2), DRAIN_SECS (30: churn, wait for the last acks/deliveries)
#   SKIP_BUILD=1    do not run cargo build
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench-cluster}
PARTS=${PARTS:-"baseline latency churn"}
LAT_ROOMS=${LAT_ROOMS:-200}
LAT_RATE=${LAT_RATE:-2}
LAT_DURATION=${LAT_DURATION:-20}
CHURN_ROOMS=${CHURN_ROOMS:-1000}
PROBE_MS=${PROBE_MS:-2000}
SETTLE_SECS=${SETTLE_SECS:-10}
KILL_NODE=${KILL_NODE:-2}
DRAIN_SECS=${DRAIN_SECS:-30}
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="$TARGET/release/voiceflow-loadgen"
export VOICEFLOW_BIN="$TARGET/release/voiceflow-node"

# 2,000 WebSockets in the generator and up to ~1,000 in a node.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 8192)); then
    echo "note: open-files limit is $(ulimit -n)" >&2
fi

# Prints a command, quoted so that it can be pasted back into a shell.
show() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
}
run() {
    show "$@"
    "$@"
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    run cargo build --release -p voiceflow-node -p voiceflow-loadgen
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"

CURRENT=""
cluster() {
    show env "VOICEFLOW_CLUSTER_DIR=$CURRENT" scripts/cluster "$@"
    VOICEFLOW_CLUSTER_DIR="$CURRENT" scripts/cluster "$@"
}
stop_cluster() {
    if [[ -n "$CURRENT" ]]; then
        cluster down || true
        CURRENT=""
    fi
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# Starts N nodes in a fresh directory $BENCH_DIR/$1; sets URLS and PIDS.
start_cluster() {
    local name="$1" n="$2" i
    CURRENT="$BENCH_DIR/$name"
    mkdir -p "$CURRENT"
    cluster up "$n"
    URLS=""
    PIDS=""
    for ((i = 1; i <= n; i++)); do
        URLS+="${URLS:+,}http://127.0.0.1:$((${VOICEFLOW_HTTP_PORT_BASE:-3000} + i))"
        PIDS+="${PIDS:+,}$(cat "$CURRENT/node-$i/pid")"
    done
}

# Warnings and errors of the nodes, without the CQL driver's complaints about the
# Cassandra 2.1 system tables (logged at every connection).
show_logs() {
    local log lines
    for log in "$CURRENT"/node-*/node.log; do
        [[ -f "$log" ]] || continue
        lines="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E ' (WARN|ERROR) ' |
            grep -v 'scylla::cluster::metadata' || true)"
        [[ -n "$lines" ]] || continue
        echo "--- $log: $(wc -l <<<"$lines") warnings/errors, the last 10: ---" >&2
        tail -n 10 <<<"$lines" >&2
    done
}

status=0
latency_part() {
    local name="$1" n="$2"
    shift 2
    echo "== $name: cluster latency, $n node(s) =="
    start_cluster "$name" "$n"
    if ! run "$LOADGEN" --scenario cluster --cluster-part latency --urls "$URLS" \
        --node-pids "$PIDS" --rooms "$LAT_ROOMS" --rate "$LAT_RATE" \
        --duration "$LAT_DURATION" "$@"; then
        echo "error: loadgen cluster latency ($name) failed" >&2
        status=1
    fi
    show_logs
    stop_cluster
}

churn_part() {
    echo "== churn: 3 nodes, $CHURN_ROOMS rooms, add node 4, kill node $KILL_NODE =="
    start_cluster churn 3
    # The commands run inside the loadgen, with VOICEFLOW_CLUSTER_DIR set for them.
    show export "VOICEFLOW_CLUSTER_DIR=$CURRENT"
    export VOICEFLOW_CLUSTER_DIR="$CURRENT"
    if ! run "$LOADGEN" --scenario cluster --cluster-part churn --urls "$URLS" \
        --rooms "$CHURN_ROOMS" --probe-interval-ms "$PROBE_MS" --settle-secs "$SETTLE_SECS" \
        --join-command "scripts/cluster add" --join-url "http://127.0.0.1:$((${VOICEFLOW_HTTP_PORT_BASE:-3000} + 4))" \
        --kill-command "scripts/cluster kill $KILL_NODE" --drain-secs "$DRAIN_SECS" "$@"; then
        echo "error: loadgen cluster churn failed" >&2
        status=1
    fi
    unset VOICEFLOW_CLUSTER_DIR
    show_logs
    stop_cluster
}

for part in $PARTS; do
    case "$part" in
        baseline) latency_part baseline 1 "$@" ;;
        latency) latency_part latency 3 "$@" ;;
        churn) churn_part "$@" ;;
        *)
            echo "error: unknown part $part (baseline, latency, churn)" >&2
            status=1
            ;;
    esac
done
exit "$status"
