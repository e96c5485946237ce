#!/usr/bin/env bash
# Benchmarks one VoiceFlow node with voiceflow-loadgen.
#
# Builds both binaries in release mode, then for each scenario (fanout, rooms,
# connect) starts a fresh node on a fresh temporary data dir pinned to CPU 0, waits
# for GET /readyz to answer 200, runs the load generator pinned to CPU 1 with
# --server-pid, and stops the node. Figures are printed as `name: value unit` lines.
#
# Scenario `drain` (not in the default list) measures a graceful stop under a community's
# shape: `connect --shape community` opens DRAIN_USERS (500) users' sessions (2 each), each
# user a member of 50 of DRAIN_ROOMS (5000) rooms, so that every room has live members and
# runs; then `--then-stop-node` sends SIGTERM and times the clients' close frames and the
# process's exit, and the node's "rooms retired" log line gives how long retiring every
# room took and how many were unfinished at the grace period's end (drain.* figures).
#
# Environment overrides:
#   SCENARIOS     scenarios to run, in order      (default: "fanout rooms connect")
#   LISTEN        node listen address             (default: 127.0.0.1:3000)
#   NODE_BIN      node binary                     (default: target/release/voiceflow-node)
#   LOADGEN_BIN   loadgen binary                  (default: target/release/voiceflow-loadgen)
#   NODE_CPU      CPU list for the node           (default: 0)
#   LOADGEN_CPU   CPU list for the load generator (default: 1)
#   SKIP_BUILD=1  do not run cargo build
#   NODE_TOML     extra lines for the node's config (e.g. $'[search]\nenabled = false')
#   NODE_TOML_BASE  the lines written before NODE_TOML (default: rate limits off, per-IP cap
#                 1,000,000). Builds older than the front door (feb4730) reject `[http]`, older
#                 than d78f61a `[limits]` too: with NODE_BIN set to one of those, pass
#                 NODE_TOML_BASE=$'[limits]\nrate_limits = false' or NODE_TOML_BASE=''
# Extra arguments are passed to every loadgen run, e.g. `--duration 5`.
set -euo pipefail

cd "$(dirname "$0")/.."

SCENARIOS=${SCENARIOS:-"fanout rooms connect"}
LISTEN=${LISTEN:-127.0.0.1:3000}
NODE_BIN=${NODE_BIN:-target/release/voiceflow-node}
LOADGEN_BIN=${LOADGEN_BIN:-target/release/voiceflow-loadgen}
NODE_CPU=${NODE_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
URL="http://${LISTEN}"

# 10,000 WebSocket connections need as many descriptors in both processes.
if ! ulimit -n 65536 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)"
    echo "note: open-files limit is $(ulimit -n) (hard limit), not 65536" >&2
fi

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p voiceflow-node -p voiceflow-loadgen
fi

NODE_PID=""
DATA_DIR=""

stop_node() {
    if [[ -n "$NODE_PID" ]]; then
        kill "$NODE_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$NODE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=""
    fi
    if [[ -n "$DATA_DIR" ]]; then
        rm -rf "$DATA_DIR"
        DATA_DIR=""
    fi
}
trap stop_node EXIT
trap 'exit 130' INT TERM

show_node_log() {
    if [[ -n "$DATA_DIR" && -f "$DATA_DIR/node.log" ]]; then
        echo "--- last lines of the node log ---" >&2
        tail -n 40 "$DATA_DIR/node.log" >&2 || true
    fi
}

start_node() {
    DATA_DIR=$(mktemp -d -t voiceflow-bench.XXXXXX)
    mkdir -p "$DATA_DIR/data"
    # The generator drives thousands of users from one address: rate limits off.
    local base=$'[limits]\nrate_limits = false\n[http]\nmax_connections_per_ip = 1000000'
    printf '%s\n' "${NODE_TOML_BASE-$base}" >"$DATA_DIR/node.toml"
    printf '%s\n' "${NODE_TOML:-}" >>"$DATA_DIR/node.toml"
    taskset -c "$NODE_CPU" "$NODE_BIN" --config "$DATA_DIR/node.toml" --listen "$LISTEN" \
        --data-dir "$DATA_DIR/data" >"$DATA_DIR/node.log" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 1 120); do
        if ! kill -0 "$NODE_PID" 2>/dev/null; then
            echo "error: the node exited during start-up" >&2
            show_node_log
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 1 "$URL/readyz" 2>/dev/null; then
            return 0
        fi
        sleep 0.25
    done
    echo "error: the node did not answer 200 on $URL/readyz within 30 s" >&2
    show_node_log
    return 1
}

status=0
for scenario in $SCENARIOS; do
    echo "== $scenario =="
    if ! start_node; then
        status=1
        stop_node
        continue
    fi
    run_as=("$scenario")
    if [[ "$scenario" == drain ]]; then
        run_as=(connect --shape community --rooms "${DRAIN_ROOMS:-5000}"
            --users "${DRAIN_USERS:-500}" --rooms-per-user 50 --sessions-per-user 2
            --then-stop-node)
    fi
    if ! taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" --url "$URL" --scenario "${run_as[@]}" \
        --server-pid "$NODE_PID" "$@"; then
        echo "error: loadgen scenario $scenario failed" >&2
        show_node_log
        status=1
    fi
    if [[ "$scenario" == drain ]]; then
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=""
        line=$(sed 's/\x1b\[[0-9;]*m//g' "$DATA_DIR/node.log" | grep 'rooms retired' | tail -n 1)
        if [[ -z "$line" ]]; then
            echo "error: the node logged no 'rooms retired' line" >&2
            show_node_log
            status=1
        else
            field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
            echo "drain.rooms_asked_to_retire: $(field rooms) rooms"
            echo "drain.rooms_unfinished_at_deadline: $(field unfinished) rooms"
            echo "drain.retire_all_ms: $(field retire_ms) ms"
            echo "drain.retired_after_signal_ms: $(field since_signal_ms) ms"
        fi
    fi
    stop_node
done
exit "$status"
