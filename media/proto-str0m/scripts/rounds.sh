#!/bin/bash
# Alternates str0m-proto and sfubench on one scenario, each run wrapped in the bench lock and
# quiet.sh; one file per run in $OUT (default .): <tag>-<round>-<server>.txt with the date,
# uptime and output.  Usage: rounds.sh <tag> <rounds> "<str0m-proto args>" "<sfubench args>"
TAG=$1; ROUNDS=$2; MINE=$3; OURS=$4
OUT=${OUT:-.}
P=${BIN:-/work/wt/tgt-str0m/release/str0m-proto}
S=${SFUBENCH:-/work/main/target/release/sfubench}
for r in $(seq 1 "$ROUNDS"); do
  for who in str0m ours; do
    f="$OUT/$TAG-$r-$who.txt"
    if [ $who = str0m ]; then cmd="$P $MINE"; else cmd="$S $OURS"; fi
    { date -u; uptime; echo "cmd: $cmd"; flock /work/wt/bench.lock /work/logs/quiet.sh $cmd; } > "$f" 2>&1
  done
done
