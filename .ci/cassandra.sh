#!/usr/bin/env bash
# The CQL test server for CI: Apache Cassandra 2.1 behind the protocol v4<->v3 bridge, started
# with scripts/cassandra in target/cassandra-ci (fresh data each start), loopback only.
#
#   bash .ci/cassandra.sh start   prints `export VOICEFLOW_TEST_CQL=…` and
#                                 `export VOICEFLOW_TEST_CQL_DIR=…` lines on stdout (everything
#                                 else goes to stderr); without java it prints a loud warning
#                                 and no exports, so the CQL runs of the tests skip loudly
#   bash .ci/cassandra.sh stop    stops Cassandra and the bridge
#
# In .ci/run, before `cargo test`:
#   cql_env="$(bash .ci/cassandra.sh start)"
#   trap 'bash .ci/cassandra.sh stop' EXIT
#   eval "$cql_env"
# (Assigning first makes a failed start fail the run under `set -e`; `eval "$(…)"` would not.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${VOICEFLOW_CASSANDRA_DIR:-$ROOT/target/cassandra-ci}"

case "${1:-}" in
  start)
    if ! command -v java >/dev/null 2>&1; then
      {
        echo "################################################################################"
        echo "## WARNING: no java on this machine: Cassandra cannot run, so the CQL backend   ##"
        echo "## conformance tests and node/tests/cql.rs are SKIPPED in this run.             ##"
        echo "################################################################################"
      } >&2
      exit 0
    fi
    # Fresh data for every CI run; the unpacked Cassandra is cached beside it in target/.
    bash "$ROOT/scripts/cassandra" stop "$DIR" >&2 || true
    rm -rf "$DIR"
    bash "$ROOT/scripts/cassandra" start "$DIR" | grep '^export ' || {
      echo "cassandra.sh: the CQL test server did not start; see $DIR/cassandra.log" >&2
      tail -n 40 "$DIR/cassandra.log" >&2 || true
      exit 1
    }
    ;;
  stop)
    bash "$ROOT/scripts/cassandra" stop "$DIR" >&2
    ;;
  *)
    echo "usage: bash .ci/cassandra.sh start|stop" >&2
    exit 2
    ;;
esac
