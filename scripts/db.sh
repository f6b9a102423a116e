#!/usr/bin/env bash
# db.sh — operator commands for a QryptChat database (DATABASE_URL), with our migrations (supabase/migrations).
#
#   scripts/db.sh check [dbcheck flags]    READ-ONLY. Which of our migrations are applied and pending (from the
#                                          supabase CLI's history), and whether the live schema matches the
#                                          committed manifest for that state (supabase/manifests: production,
#                                          pre-cutover, final). Exit 0 matches, 1 differs, 2 error. Builds and runs
#                                          cmd/dbcheck (see its doc comment for the flags: -all, -dump,
#                                          -ignore-kinds, -migrations, -manifests).
#   scripts/db.sh push [--before-cutover] [--dry-run]
#                                          WRITES. The pinned supabase CLI's `db push --db-url "$DATABASE_URL"`
#                                          from a temporary workdir holding supabase/config.toml,
#                                          supabase/signing_keys.json and our migrations: all of them, or with
#                                          --before-cutover all but the *_cutover_* ones (the original server keeps
#                                          working; push again without the flag when it is switched off).
#                                          Each file runs in one transaction and is recorded in
#                                          supabase_migrations.schema_migrations.
#   scripts/db.sh manifests                Rebuild supabase/manifests on the test stack's throwaway databases
#                                          (needs `source .stack/test/env` or another stack's env, and the vendored
#                                          archive of the original app): go test ./internal/schematest
#                                          -run '^TestManifestsCurrent$' -write-manifests. Review and commit the diff.
#
# Existing deployments: their history holds the original app's 105 migration versions, which are not in our
# repository, and `supabase db push` refuses a history with versions it has no file for. push therefore writes a
# placeholder file (a comment; the CLI never runs it) for every recorded version that is older than our first
# migration (dbcheck -print-placeholders lists them, read-only), instead of rewriting the history the way
# `supabase migration repair` would. An unknown version newer than that stops the push.
#
# The CLI runs closed off: an empty PATH, a temporary HOME and SUPABASE_HOME, telemetry and the update notifier off.
# `go run` is not used to run dbcheck: it reports every failing exit status as 1, and check's 1 and 2 differ.
set -euo pipefail
LOG_TAG=db
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
ROOT=$SCRIPTS_ROOT
cd "$ROOT"

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

need_go() {
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		export PATH="$PATH:/usr/local/go/bin"
	fi
	command -v go >/dev/null || die "go is not on PATH"
}

# build_dbcheck: cmd/dbcheck built into $TMP_DIR (a fresh build each time: it is quick with Go's build cache).
build_dbcheck() {
	need_go
	go build -o "$TMP_DIR/dbcheck" ./cmd/dbcheck || die "go build ./cmd/dbcheck failed"
}

TMP_DIR=$(mktemp -d)
trap 'rm -rf "$TMP_DIR"' EXIT

cmd=${1:-}
[[ -n $cmd ]] || usage
shift

case $cmd in
check)
	[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is not set"
	build_dbcheck
	rc=0
	"$TMP_DIR/dbcheck" "$@" || rc=$?
	exit "$rc"
	;;
push)
	before_cutover=0
	dry_run=()
	for a in "$@"; do
		case $a in
		--before-cutover) before_cutover=1 ;;
		--dry-run) dry_run=(--dry-run) ;;
		*) die "push: unknown argument $a (usage: scripts/db.sh push [--before-cutover] [--dry-run])" ;;
		esac
	done
	[[ -n ${DATABASE_URL:-} ]] || die "DATABASE_URL is not set"
	# shellcheck source=lib/tools.sh
	source "$ROOT/scripts/lib/tools.sh"
	ensure_supabase_cli
	build_dbcheck

	work=$TMP_DIR/work
	mkdir -p "$work/supabase/migrations" "$TMP_DIR/home" "$TMP_DIR/bin" "$TMP_DIR/tmp"
	cp supabase/config.toml supabase/signing_keys.json "$work/supabase/"
	n=0
	for f in supabase/migrations/*.sql; do
		base=$(basename "$f")
		if ((before_cutover)) && [[ $base == *_cutover_* ]]; then
			log "leaving out $base (--before-cutover)"
			continue
		fi
		cp "$f" "$work/supabase/migrations/"
		n=$((n + 1))
	done
	((n > 0)) || die "no migrations in supabase/migrations"

	# Placeholders for the versions the history holds that are not ours (read-only query).
	placeholders=$("$TMP_DIR/dbcheck" -print-placeholders) || die "the history holds versions that are neither ours nor older than ours; not pushing"
	np=0
	while IFS=$'\t' read -r version name; do
		[[ -n $version ]] || continue
		[[ -n $name ]] || name=applied_before_suparelay
		printf -- '-- Placeholder: applied before suparelay (recorded in supabase_migrations.schema_migrations); never run.\n' \
			>"$work/supabase/migrations/${version}_${name}.sql"
		np=$((np + 1))
	done <<<"$placeholders"
	((np == 0)) || log "$np recorded versions that are not ours (the original app's) get placeholder files"

	log "supabase db push of $n migration(s)${dry_run:+ (dry run)}"
	env -i PATH="$TMP_DIR/bin" HOME="$TMP_DIR/home" SUPABASE_HOME="$TMP_DIR/home/.supabase" TMPDIR="$TMP_DIR/tmp" \
		SUPABASE_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 SUPABASE_NO_UPDATE_NOTIFIER=1 \
		"$SUPABASE_CLI" db push --db-url "$DATABASE_URL" --workdir "$work" --yes "${dry_run[@]}"
	;;
manifests)
	[[ -n ${SUPARELAY_TEST_DATABASE_URL:-} ]] || die "no test stack: source .stack/test/env (scripts/stack.sh up with STACK_NAME=test) first"
	need_go
	go test -count=1 -run '^TestManifestsCurrent$' ./internal/schematest -write-manifests -v | grep -E '^(---|ok|FAIL|PASS)|wrote ' || true
	git -C "$ROOT" status --short supabase/manifests
	;;
-h | --help | help) usage ;;
*) usage ;;
esac
