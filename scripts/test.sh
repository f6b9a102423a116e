#!/usr/bin/env bash
# test.sh — what `make test` and CI run: install what is missing, start a fresh private test stack (the real
# Supabase Auth, Storage, PostgREST, PostgreSQL, Redis and the QryptChat frontend; random ports, never the dev
# stack's), go vet, go test -race, a short run of every fuzz target, and always stop the stack.
#
# Environment: FUZZTIME (default 10s per fuzz target), GO_TEST_FLAGS (extra flags for go test),
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null || {
	echo "test: go is not on PATH" >&2
	exit 1
}

export STACK_NAME=test STACK_FRESH=1
# (the original-server stack below overrides STACK_NAME for its own commands)
# A private cluster and Redis per run: never touch whatever the machine's environment points at.
unset DATABASE_URL PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE REDIS_URL STACK_REDIS_URL
FUZZTIME=${FUZZTIME:-10s}
read -r -a EXTRA <<<"${GO_TEST_FLAGS:-}"

START=$SECONDS
SUMMARY=()
FAILED=0
say() { printf '\n=== test.sh: %s\n' "$*"; }

# step NAME CMD…: run a step, record its result and duration, keep going on failure.
step() {
	local name=$1 t0=$SECONDS rc=0
	shift
	say "$name"
	"$@" || rc=$?
	if ((rc == 0)); then
		SUMMARY+=("PASS  $(printf '%-40s' "$name") $((SECONDS - t0))s")
	else
		SUMMARY+=("FAIL  $(printf '%-40s' "$name") $((SECONDS - t0))s (exit $rc)")
		FAILED=1
	fi
	return 0
}

install_missing() {
	local pkgs=()
	if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
		pkgs+=(postgresql)
	fi
	command -v psql >/dev/null || pkgs+=(postgresql-client)
	command -v redis-server >/dev/null || pkgs+=(redis-server)
	[[ -x /usr/bin/chromium ]] || pkgs+=(chromium)
	command -v curl >/dev/null || pkgs+=(curl)
	# Building Storage compiles one native Node module (node-gyp); fetching the Node 24 toolchain needs npm.
	command -v make >/dev/null || pkgs+=(make)
	command -v g++ >/dev/null || pkgs+=(g++)
	command -v python3 >/dev/null || pkgs+=(python3)
	command -v npm >/dev/null || pkgs+=(npm)
	((${#pkgs[@]})) || return 0
	if [[ $(id -u) -ne 0 ]]; then
		echo "test: WARNING: missing ${pkgs[*]} and not root: install them with apt-get" >&2
		return 0
	fi
	say "installing ${pkgs[*]} from Debian"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}

cleanup() {
	local rc=$?
	say "stopping the test stacks"
	scripts/stack.sh down || true
	STACK_NAME=orig scripts/stack.sh down || true
	printf '\n=== test.sh summary (%ss total)\n' "$((SECONDS - START))"
	printf '%s\n' "${SUMMARY[@]}"
	if ((FAILED || rc)); then
		echo "=== RESULT: FAIL"
		exit 1
	fi
	echo "=== RESULT: PASS"
}
trap cleanup EXIT

install_missing
# The two stacks start side by side (each has its own state, ports and lock; the build cache is shared under its
# own locks), and go vet runs meanwhile.
say "starting the test stacks (the second: an upgraded production database with the ORIGINAL server, before the cutover)"
t0=$SECONDS
orig_log=$(mktemp)
# The second stack is an upgraded PRODUCTION database (the original app's 105 migrations, then ours without the
# cutover) with the ORIGINAL Node server serving it: e2e/original_test.go proves the upgrade is rollback-safe.
STACK_NAME=orig STACK_PRODUCTION=1 STACK_CUTOVER=0 STACK_FRONTEND=original STACK_GATEWAY_PORT=54341 \
	STACK_APP_PORT=54340 STACK_ENV_PREFIX=SUPARELAY_ORIG scripts/stack.sh up >"$orig_log" 2>&1 &
orig_pid=$!
step "go vet ./..." go vet ./...
scripts/stack.sh up
SUMMARY+=("PASS  $(printf '%-40s' 'stack up') $((SECONDS - t0))s")
orig_rc=0
wait "$orig_pid" || orig_rc=$?
cat "$orig_log"
rm -f "$orig_log"
((orig_rc == 0)) || {
	echo "test: the original-server stack did not start (exit $orig_rc)" >&2
	exit 1
}
SUMMARY+=("PASS  $(printf '%-40s' 'original-server stack up') $((SECONDS - t0))s")
# shellcheck disable=SC1091
source .stack/orig/env
# shellcheck disable=SC1091
source .stack/test/env

# -p 4: more packages than cores at once. The slow ones (the browser tests, the API suite) spend much of their
# time waiting on the stack, so they overlap well.
step "go test -race ./..." go test -race -count=1 -p 4 -timeout 25m "${EXTRA[@]}" ./...

# The fault suite stops and starts the test stack's own services (Redis, PostgREST, Auth, Storage), so it runs
# alone, after every other package.
step "fault suite (e2e, SUPARELAY_FAULTS=1)" env SUPARELAY_FAULTS=1 go test -count=1 -run '^TestFault' -timeout 15m \
	"${EXTRA[@]}" ./e2e/

# Fuzz targets, found in the sources (cheaper than building every test binary again to list them).
say "discovering fuzz targets"
fuzz=()
while IFS=: read -r file name; do
	pkg=$(go list "./$(dirname "$file")")
	fuzz+=("$pkg $name")
done < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | grep -v '^./.stack' | sed 's/func //' | sort -u)
if ((${#fuzz[@]} == 0)); then
	echo "no fuzz targets"
fi
# fuzz_one PKG NAME: a short fuzz run. Go 1.26's fuzz coordinator can end a duration-bounded run with a bare
# "context deadline exceeded" failure at the deadline (golang/go#75804, fixed in Go 1.27); such a run that wrote no
# reproducer to testdata/fuzz/NAME is a pass. Any run that wrote a reproducer fails.
fuzz_one() {
	local pkg=$1 n=$2 dir out rc=0 before after
	dir=$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$n
	before=$( (find "$dir" -type f 2>/dev/null || true) | sort | md5sum)
	out=$(mktemp)
	go test -run='^$' -fuzz="^$n\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tee "$out" || rc=$?
	after=$( (find "$dir" -type f 2>/dev/null || true) | sort | md5sum)
	if ((rc != 0)) && [[ $before == "$after" ]] && grep -q '^    context deadline exceeded$' "$out" &&
		! grep -q 'Failing input written to' "$out"; then
		echo "test.sh: $n hit Go's fuzz deadline race (golang/go#75804) without a failing input: counted as a pass"
		rc=0
	fi
	rm -f "$out"
	return "$rc"
}
for f in "${fuzz[@]}"; do
	read -r pkg n <<<"$f"
	step "fuzz $n ($FUZZTIME)" fuzz_one "$pkg" "$n"
done
