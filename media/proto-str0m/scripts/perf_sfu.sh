#!/bin/bash
# Profiles the `sfu` thread of str0m-proto during a run: starts "$BIN $@", waits for its
# sfu_tid line and the joins (WAIT, default 3 s), records DUR (default 8) s of that thread
# with perf (CALLGRAPH, default -g; e.g. "--call-graph dwarf,16384"), prints the flat top
# (self time per symbol).
BIN=${BIN:-/work/wt/tgt-str0m/release/str0m-proto}
OUT=${OUT:-/tmp/str0m-perf}
mkdir -p "$OUT"
"$BIN" "$@" > "$OUT/run.txt" 2>&1 &
PID=$!
TID=""
for _ in $(seq 1 100); do
  TID=$(sed -n 's/^sfu_tid: //p' "$OUT/run.txt")
  [ -n "$TID" ] && break
  sleep 0.1
done
sleep "${WAIT:-3}"
perf record -e cpu-clock -F 999 ${CALLGRAPH:--g} -t "$TID" -o "$OUT/perf.data" -- sleep "${DUR:-8}" 2> "$OUT/perf.err"
wait $PID
perf report -i "$OUT/perf.data" --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep '%' | head -40
