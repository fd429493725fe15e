#!/usr/bin/env bash
# Starts, stops or reports on the local Kafka-compatible broker (tansu) that the
# Kafka tests and cluster mode use. Listens on 127.0.0.1 only.
#
#   scripts/broker.sh start     start unless already listening (idempotent)
#   scripts/broker.sh stop      stop the broker this script started
#   scripts/broker.sh status    exit 0 when the broker accepts connections
#
# SINTER_BROKER_PORT (default 9092), SINTER_BROKER_STORAGE (default memory://tansu/;
# sqlite://FILE keeps data across restarts) and SINTER_BROKER_LOG (tansu's log filter,
# default warn) change where and how it runs.
set -euo pipefail

port="${SINTER_BROKER_PORT:-9092}"
storage="${SINTER_BROKER_STORAGE:-memory://tansu/}"
state="${SINTER_STATE_DIR:-${TMPDIR:-/tmp}/sinter-services}"
pidfile="$state/tansu-$port.pid"
logfile="$state/tansu-$port.log"
export PATH="$HOME/.cargo/bin:$PATH"

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

case "${1:-start}" in
  start)
    if listening; then
      echo "broker: already listening on 127.0.0.1:$port"
      exit 0
    fi
    if ! command -v tansu >/dev/null; then
      echo "broker: tansu is not installed; run: make install-broker" >&2
      exit 1
    fi
    mkdir -p "$state"
    # tansu logs every span at RUST_LOG's level: the caller's RUST_LOG=info would write
    # gigabytes a minute, so the broker has its own (SINTER_BROKER_LOG, default warn).
    RUST_LOG="${SINTER_BROKER_LOG:-warn}" nohup tansu broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "$storage" >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if listening; then
        echo "broker: tansu listening on 127.0.0.1:$port (pid $(cat "$pidfile"), log $logfile)"
        exit 0
      fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "broker: tansu exited at start; its log:" >&2
        cat "$logfile" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "broker: tansu did not listen on 127.0.0.1:$port within 20s; log: $logfile" >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
      echo "broker: stopped pid $(cat "$pidfile")"
    fi
    rm -f "$pidfile"
    ;;
  status)
    if listening; then echo "broker: up on 127.0.0.1:$port"; else echo "broker: down"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
