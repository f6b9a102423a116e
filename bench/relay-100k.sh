#!/usr/bin/env bash
# 100,000 SSE streams across NODES relay processes sharing one Redis (loopback only, bounded in time).
# Usage: bench/relay-100k.sh [redis-url]   (default redis://127.0.0.1:6379/0)
# Each client process holds 17,000 streams spread over all nodes (≤ 20,000 fds per process).
set -euo pipefail
REDIS=${1:-redis://127.0.0.1:6379/0}
NODES=${NODES:-6}
CLIENTS=${CLIENTS:-6}
PER=${PER:-17000}
BIN=$(mktemp -d)/relaybench
go build -o "$BIN" ./cmd/relaybench
PREFIX="relaybench:$RANDOM$RANDOM:"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
urls=()
for n in $(seq 1 "$NODES"); do
  port=$((8190 + n))
  "$BIN" -serve -detach -addr "127.0.0.1:$port" -redis "$REDIS" -prefix "$PREFIX" 2>"/tmp/relay100k-node$n.log" &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done
sleep 2
URLS=$(IFS=,; echo "${urls[*]}")
# Holders: clients 1..CLIENTS-1 open their streams and hold them.
for c in $(seq 1 $((CLIENTS - 1))); do
  "$BIN" -url "$URLS" -streams "$PER" -room-size 1000 -user-offset $((c * PER)) -srcips 8 -hold 120s \
    >"/tmp/relay100k-client$c.log" 2>&1 &
  pids+=($!)
done
# Wait until the holders are connected (bounded).
for i in $(seq 1 120); do
  n=$( (grep -l "^holding" /tmp/relay100k-client*.log 2>/dev/null || true) | wc -l)
  [ "$n" -ge $((CLIENTS - 1)) ] && break
  sleep 1
done
grep -h "^connected\|^holding" /tmp/relay100k-client*.log || true
# The measuring client: its rooms' members are spread over every node; events are published round-robin on all.
"$BIN" -url "$URLS" -streams "$PER" -room-size 1000 -user-offset 0 -srcips 8 -big-events 5 \
  -publishers 2 -rate 20 -duration 10s
for n in $(seq 1 "$NODES"); do
  curl -s "http://127.0.0.1:$((8190 + n))/stats?gc=1"; echo
done
redis-cli -u "$REDIS" --scan --pattern "${PREFIX}*" | xargs -r redis-cli -u "$REDIS" del >/dev/null
