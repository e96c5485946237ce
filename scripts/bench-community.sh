#!/usr/bin/env bash
# Measures one community at scale on a real node (embedded store): 100,000 members and 500
# channels seeded straight into the store, then member pages and prefix searches, the channel
# list, channel room starts, message acks, role changes and their enforcement, and RSS, all
# over HTTP/WebSocket. Prints one table (see loadgen/src/bin/community-scale/main.rs).
#
# Environment overrides:
#   DIR           working directory (seeded once, reused)  (default: a fresh temporary one)
#   NODE_BIN      node binary                   (default: target/release/voiceflow-node)
#   BENCH_BIN     benchmark binary              (default: target/release/community-scale)
#   SKIP_BUILD=1  do not run cargo build
# Extra arguments go to community-scale, e.g. `--members 20000 --samples 100`.
set -euo pipefail

cd "$(dirname "$0")/.."

NODE_BIN=${NODE_BIN:-target/release/voiceflow-node}
BENCH_BIN=${BENCH_BIN:-target/release/community-scale}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p voiceflow-node -p voiceflow-loadgen --bin voiceflow-node \
        --bin community-scale
fi
if [[ -z "${DIR:-}" ]]; then
    DIR=$(mktemp -d -t voiceflow-community-XXXXXX)
    trap 'rm -rf "$DIR"' EXIT
fi
"$BENCH_BIN" --dir "$DIR" --node-bin "$NODE_BIN" "$@"
