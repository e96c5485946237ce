#!/bin/bash
# Runs "$@" and samples the CPU seconds (utime + stime) of its thread named `sfu` every 50 ms,
# to stderr-free file $TRACE (default /tmp/sfu_cpu_trace.txt): lines "<secs since start> <cpu secs>".
# Used to get sfubench's server CPU during the joins (sfubench does not print it): the CPU at
# all_joined_secs minus the CPU at the start, over the participants.
TRACE=${TRACE:-/tmp/sfu_cpu_trace.txt}
: > "$TRACE"
"$@" &
PID=$!
START=$(date +%s.%N)
TID=""
while kill -0 $PID 2>/dev/null; do
  if [ -z "$TID" ]; then
    for t in /proc/$PID/task/*; do
      [ "$(cat $t/comm 2>/dev/null)" = "sfu" ] && TID=${t##*/}
    done
  fi
  if [ -n "$TID" ] && [ -r /proc/$PID/task/$TID/stat ]; then
    NOW=$(date +%s.%N)
    CPU=$(sed 's/.*) //' /proc/$PID/task/$TID/stat | awk '{print ($12 + $13) / 100}')
    echo "$(echo "$NOW - $START" | bc) $CPU" >> "$TRACE"
  fi
  sleep 0.05
done
wait $PID
