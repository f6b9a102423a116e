#!/usr/bin/env bash
# dev.sh — what `make dev` runs: the dev stack (gateway on 54321, Postgres on 54322 when free), ready-made demo
# sessions, then the suparelay server with the stack's environment (PORT, default 3000).
# The stack keeps running after the server stops; `make stack-down` stops it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export STACK_NAME=dev
scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/dev/env
export PORT=${PORT:-3000}
APP_URL="http://localhost:$PORT"

echo
echo "=== demo sessions (signed in through $SUPABASE_URL/auth/v1/verify with the test OTP 123456)"
.stack/dev/bin/devauth -demo-sessions "$SUPABASE_URL" -app-url "$APP_URL" ||
	echo "dev: could not sign in the demo users (is supabase/seed.sql applied?)" >&2

echo
echo "=== environment (.stack/env)"
cat .stack/dev/env
if [[ ! -d cmd/suparelay ]]; then
	echo
	echo "dev: cmd/suparelay does not exist yet; the stack is up, source .stack/env to use it."
	exit 0
fi
echo
echo "=== go run ./cmd/suparelay on :$PORT (Ctrl-C stops the server; make stack-down stops the stack)"
exec go run ./cmd/suparelay
