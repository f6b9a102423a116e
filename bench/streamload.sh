#!/usr/bin/env bash
# Memory per stream and the soak against the full server in the production configuration: cmd/suparelay with the
# front door (FRONTEND_URL, PROXY_SUPABASE, as e2e/frontend_test.go runs it), Redis, rate limits, the real stack;
# bench/streamload opens the streams with real cookies and joins, and sends through /api/messages/send.
# Needs the test stack's env:  source .stack/orig/env; source .stack/test/env
# Usage: bench/streamload.sh [streamload flags]   e.g. -streams 10000 -rate 5 -duration 30m -sample 1m
# PORT (18080) and PPROF (16060) pick the server's loopback ports; SERVER_ENV adds VAR=value pairs to its env;
# SERVER_BIN runs a suparelay built elsewhere (e.g. from another commit, for before/after).
set -euo pipefail
: "${SUPARELAY_TEST_SUPABASE_URL:?source the test stack env first}"
PORT=${PORT:-18080}
PPROF=${PPROF:-16060}
BIN=$(mktemp -d)
if [ -n "${SERVER_BIN:-}" ]; then cp "$SERVER_BIN" "$BIN/suparelay"; else go build -o "$BIN/suparelay" ./cmd/suparelay; fi
go build -o "$BIN/streamload" ./bench/streamload
LOG=${LOG:-$BIN/suparelay.log}
# A prefix of its own: the stack's Redis is shared with the tests.
env -i PATH="$PATH" HOME="$HOME" PORT="$PORT" LISTEN_ADDR="127.0.0.1:$PORT" DEBUG_PPROF_ADDR="127.0.0.1:$PPROF" \
  SUPABASE_URL="$SUPARELAY_TEST_SUPABASE_URL" SUPABASE_PUBLIC_URL="http://127.0.0.1:$PORT" \
  SUPABASE_ANON_KEY="$SUPABASE_ANON_KEY" SUPABASE_SERVICE_ROLE_KEY="$SUPABASE_SERVICE_ROLE_KEY" \
  SUPABASE_JWT_SECRET="$SUPABASE_JWT_SECRET" FRONTEND_URL="$SUPARELAY_TEST_FRONTEND_URL" PROXY_SUPABASE=true \
  REDIS_URL="$SUPARELAY_TEST_REDIS_URL" REDIS_PREFIX="streamload$RANDOM:" TRUSTED_PROXIES=127.0.0.1 \
  EXPIRY_JOB_INTERVAL=0 RATE_LIMITS=true LOG_FORMAT=json LOG_LEVEL=info ${SERVER_ENV:-} \
  "$BIN/suparelay" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null
echo "suparelay pid $SERVER on 127.0.0.1:$PORT (log $LOG)"
"$BIN/streamload" -url "http://127.0.0.1:$PORT" -pid "$SERVER" -pprof "http://127.0.0.1:$PPROF" \
  -db "$SUPARELAY_TEST_DATABASE_URL" "$@"
