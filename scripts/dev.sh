#!/usr/bin/env bash
# dev.sh — what `make dev` runs: the dev stack (the real Supabase Auth, Storage, PostgREST and PostgreSQL behind a
# gateway on 54321, Redis, the QryptChat frontend's page server), demo sessions signed in through the real Auth,
# then suparelay in front of it all on :3000 — open http://127.0.0.1:3000 for the app.
#
# The demo sessions are also written to .stack/demo.env: `source .stack/demo.env` in another shell sets ALICE_TOKEN,
# ALICE_COOKIE, BOB_… and CAROL_… for the README's curl lines. The stack keeps running when the server is stopped
# with Ctrl-C (`make stack-down` stops it); if anything fails, what this run started is stopped again.
#
# Environment: STACK_FRONTEND=0 skips the frontend (no first-run build), STACK_APP_PORT picks another port than 3000.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
export STACK_NAME=dev
say() { printf 'dev: %s\n' "$*" >&2; }

# Was the stack already up? Then a failure here leaves it as it was; otherwise it is stopped again.
was_up=0
if scripts/stack.sh status >/dev/null 2>&1; then was_up=1; fi
failed() {
	local rc=$?
	((rc == 0)) && return 0
	if ((was_up == 0)); then
		say "failed (exit $rc): stopping the stack this run started"
		scripts/stack.sh down || true
	fi
	exit "$rc"
}
trap failed EXIT

scripts/stack.sh up
# shellcheck disable=SC1091
source .stack/dev/env
APP_URL=$SUPARELAY_TEST_APP_URL
PORT=${APP_URL##*:}

echo
echo "=== demo sessions (signed in through the real Supabase Auth at $SUPABASE_URL/auth/v1 with the test OTP 123456)"
.stack/dev/bin/devstack demo-sessions -supabase "$SUPABASE_URL" -public-url "$APP_URL" -app-url "http://localhost:$PORT" \
	-env-file .stack/demo.env

echo
echo "=== the app: $APP_URL (pages from the QryptChat frontend, /api from suparelay, Supabase through it)"
echo "=== in another shell:  source .stack/demo.env  — then the README's curl lines work as written"
export PORT SUPABASE_PUBLIC_URL="$APP_URL" PROXY_SUPABASE=true
if [[ -n ${SUPARELAY_TEST_FRONTEND_URL:-} ]]; then export FRONTEND_URL=$SUPARELAY_TEST_FRONTEND_URL; fi
export EXPIRY_JOB_INTERVAL=${EXPIRY_JOB_INTERVAL:-1m}
go build -o .stack/dev/bin/suparelay ./cmd/suparelay

echo "=== suparelay on :$PORT (Ctrl-C stops the server; make stack-down stops the stack)"
# Ctrl-C reaches the server, which shuts down in order; this script only waits for it (a handler, not an ignore,
# so that the server does not inherit it).
interrupted=0
trap 'interrupted=1' INT TERM
rc=0
.stack/dev/bin/suparelay || rc=$?
if ((rc == 0 || interrupted)); then
	trap - EXIT
	say "server stopped; the stack is still up (make stack-down stops it)"
	exit 0
fi
say "suparelay exited with $rc"
exit "$rc"
