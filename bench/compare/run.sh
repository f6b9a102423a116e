#!/usr/bin/env bash
# run.sh — `make compare`: the side-by-side benchmark of the original Node server and suparelay in one command.
# It brings up the orig stack (an upgraded production database with the ORIGINAL server, started exactly as
# scripts/test.sh starts it) when that stack is not answering, then runs bench/compare against it; suparelay is
# built from cmd/suparelay and run by the benchmark itself. Arguments go to the benchmark (see -help), e.g.
#
#   make compare COMPARE_FLAGS='-members 201 -streams-per-user 5 -rates 5,10,20,30 -runs 2'
#
# Environment: COMPARE_STACK (default .stack/orig), the orig stack's state folder, for a stack started elsewhere.
# The stack is left running afterwards (`STACK_NAME=orig scripts/stack.sh down` stops it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
STACK=${COMPARE_STACK:-$ROOT/.stack/orig}

answers() {
	local app
	[[ -f $STACK/env ]] || return 1
	# shellcheck disable=SC1091
	app=$(source "$STACK/env" && echo "${SUPARELAY_ORIG_APP_URL:-}")
	[[ -n $app ]] && curl -s -o /dev/null --max-time 5 "$app/"
}

if ! answers; then
	[[ $STACK == "$ROOT/.stack/orig" ]] || {
		echo "compare: the orig stack at $STACK is not answering" >&2
		exit 1
	}
	echo "compare: starting the orig stack (production database, ORIGINAL server)" >&2
	STACK_NAME=orig STACK_PRODUCTION=1 STACK_CUTOVER=0 STACK_FRONTEND=original STACK_GATEWAY_PORT=54341 \
		STACK_APP_PORT=54340 STACK_ENV_PREFIX=SUPARELAY_ORIG scripts/stack.sh up
fi
exec go run ./bench/compare -stack "$STACK" "$@"
