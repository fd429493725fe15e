#!/usr/bin/env bash
# Cluster mode on one machine: the four service binaries as separate processes on the
# Kafka-compatible broker (tansu) and PostgreSQL, running one Solution file unchanged.
#
#   scripts/cluster.sh up [SOLUTION]   start the broker, create databases and topics,
#                                      start the services, import the registry
#   scripts/cluster.sh down            stop the services this script started
#   scripts/cluster.sh status          which services are running
#
# Run the binaries built already (`make cluster-up` builds them first).
# SINTER_SOLUTION_FILE (default examples/demo/solution.yaml), SINTER_REGISTRY_FILE
# (examples/demo/registry.csv), SINTER_PG (postgres://postgres@127.0.0.1:5432),
# SINTER_CLUSTER_PROFILE (debug, or release for `cargo build --release` binaries),
# SINTER_CLUSTER_DIR (.sinter/cluster), SINTER_CLUSTER_PORT_BASE (50150: ingest
# +1, analytics +2, context +3, orchestrator +4) and SINTER_KAFKA_PROPERTIES
# (fetch.wait.max.ms=2, see below) change what runs where and how.
set -euo pipefail
cd "$(dirname "$0")/.."

solution="${2:-${SINTER_SOLUTION_FILE:-examples/demo/solution.yaml}}"
registry="${SINTER_REGISTRY_FILE:-examples/demo/registry.csv}"
pg="${SINTER_PG:-postgres://postgres@127.0.0.1:5432}"
dir="${SINTER_CLUSTER_DIR:-.sinter/cluster}"
base="${SINTER_CLUSTER_PORT_BASE:-50150}"
brokers="${SINTER_KAFKA_BROKERS:-127.0.0.1:9092}"
# tansu answers a fetch only after its full wait (`fetch.wait.max.ms`), even when records
# are ready, where Kafka answers as soon as they are: on tansu every hop between a
# reading and its recommendation costs up to two such waits, so they are kept short here.
# Setting SINTER_KAFKA_PROPERTIES (even to nothing) replaces this.
export SINTER_KAFKA_PROPERTIES="${SINTER_KAFKA_PROPERTIES-fetch.wait.max.ms=2}"
bin="${CARGO_TARGET_DIR:-$PWD/target}/${SINTER_CLUSTER_PROFILE:-debug}"
services=(ingest analytics context orchestrator)

port_of() {
  case "$1" in
    ingest) echo $((base + 1)) ;;
    analytics) echo $((base + 2)) ;;
    context) echo $((base + 3)) ;;
    orchestrator) echo $((base + 4)) ;;
  esac
}

running() {
  [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null
}

create_database() {
  local name="$1"
  if ! psql "$pg/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" \
      | grep -q 1; then
    psql "$pg/postgres" -qc "CREATE DATABASE \"$name\"" >/dev/null
    echo "cluster: database $name created"
  fi
}

start() {
  local name="$1"; shift
  if running "$name"; then
    echo "cluster: sinter-$name already running (pid $(cat "$dir/$name.pid"))"
    return
  fi
  local port
  port="$(port_of "$name")"
  nohup "$bin/sinter-$name" --solution "$solution" --bus "kafka://$brokers" \
    --grpc-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$((9560 + port - base))" \
    "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  echo "cluster: sinter-$name on 127.0.0.1:$port (log $dir/$name.log)"
}

wait_healthy() {
  local name="$1" port
  port="$(port_of "$name")"
  for _ in $(seq 1 300); do
    if grep -q "Service ready" "$dir/$name.log" 2>/dev/null; then
      return 0
    fi
    if ! running "$name"; then
      echo "cluster: sinter-$name exited; its log:" >&2
      tail -20 "$dir/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "cluster: sinter-$name not ready after 60 s (log $dir/$name.log)" >&2
  return 1
}

case "${1:-up}" in
  up)
    mkdir -p "$dir"
    "$bin/sinter" solution validate "$solution"
    scripts/broker.sh start
    for name in analytics context orchestrator; do
      create_database "sinter_$name"
    done
    "$bin/sinter-operator" --metrics-addr off topics --solution "$solution" \
      --bus "kafka://$brokers" >>"$dir/operator.log" 2>&1
    echo "cluster: topics of $solution ready"
    start ingest --http-addr "127.0.0.1:$((base + 5))"
    start analytics --database-url "$pg/sinter_analytics"
    start context --database-url "$pg/sinter_context"
    start orchestrator --database-url "$pg/sinter_orchestrator"
    for name in "${services[@]}"; do
      wait_healthy "$name"
    done
    "$bin/sinter" assets import "$registry" \
      --endpoint "http://127.0.0.1:$(port_of context)"
    cat <<ENV
cluster: up. For the sinter client commands:
  export SINTER_INGEST_ENDPOINT=http://127.0.0.1:$(port_of ingest)
  export SINTER_CONTEXT_ENDPOINT=http://127.0.0.1:$(port_of context)
  export SINTER_ORCHESTRATOR_ENDPOINT=http://127.0.0.1:$(port_of orchestrator)
ENV
    ;;
  down)
    for name in "${services[@]}"; do
      if running "$name"; then
        kill "$(cat "$dir/$name.pid")"
        echo "cluster: sinter-$name stopped"
      fi
      rm -f "$dir/$name.pid"
    done
    ;;
  status)
    for name in "${services[@]}"; do
      if running "$name"; then
        echo "sinter-$name running on 127.0.0.1:$(port_of "$name")"
      else
        echo "sinter-$name not running"
      fi
    done
    ;;
  *)
    echo "usage: scripts/cluster.sh up [SOLUTION] | down | status" >&2
    exit 2
    ;;
esac
