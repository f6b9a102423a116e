#!/usr/bin/env bash
# stack.sh — the Docker-free local Supabase stack, made of the real parts: PostgreSQL, Supabase Auth (GoTrue),
# Supabase Storage, PostgREST 12, one gateway serving them at /auth/v1, /rest/v1 and /storage/v1 as Kong does, a
# private Redis, and optionally the real QryptChat frontend's page server. DEVELOPMENT AND TESTS ONLY: trust
# authentication, well-known keys (internal/devkeys).
#
#   scripts/stack.sh up|down|status|env
#   scripts/stack.sh stop auth|storage|postgrest|redis [--keep]   (an outage, for the fault tests)
#   scripts/stack.sh start auth|storage|postgrest|redis           (back on the same port)
#
# Environment:
#   STACK_NAME      state lives in .stack/<name>/ (default "dev"; the dev stack also writes .stack/env).
#                   "dev" prefers ports 54321 (gateway), 54322 (PostgreSQL) and 3000 (the app); other names use
#                   random free ports, except the app port (see STACK_APP_PORT).
#   STACK_FRESH     =1: recreate the databases before applying the SQL.
#   STACK_FRONTEND  app (default; also 1): the QryptChat frontend's page server, built for the app origin where
#                   suparelay will serve it (STACK_APP_PORT). original: the same build as the ORIGINAL server — its
#                   own /api routes included — built for the gateway and served itself at the app origin. 0: none.
#   STACK_PRODUCTION =1: the database is a production one: the original app's 105 migrations before ours.
#   STACK_CUTOVER   =0: our *_cutover_* migrations are not applied (the state before the cutover).
#   STACK_GATEWAY_PORT  preferred gateway port (dev: 54321). A stable port keeps a build for it cached.
#   STACK_ENV_PREFIX    prefix of the addresses written to the env file (default SUPARELAY_TEST).
#   STACK_APP_PORT  where suparelay will serve the app (the frontend is built for that origin; each origin is
#                   built once and cached). Default: 3000 for dev, 54330 for other stacks when free.
#   STACK_REDIS_CLUSTER =0: no Redis Cluster (by default three cluster-mode redis-servers start beside the Redis).
#   STACK_REDIS_URL use this Redis instead of starting a private one (its keys then mix with whatever else is there).
#   SUPARELAY_VENDOR  folder of the vendored source archives (default ../shared/vendor).
#   SUPARELAY_CACHE   build cache (default ~/.cache/suparelay; /var/cache/suparelay for root).
#   PG_BIN          directory holding initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${STACK_NAME:-dev}
case $NAME in
'' | *[!A-Za-z0-9_-]*)
	echo "stack: bad STACK_NAME '$NAME'" >&2
	exit 2
	;;
esac
LOG_TAG="stack[$NAME]"
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"
# shellcheck source=lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

STATE="$ROOT/.stack/$NAME"
PIDS="$STATE/pids"
LOGS="$STATE/logs"
DB_NAME=suparelay
BASE_DB=suparelay_base # bootstrap + Auth's and Storage's own migrations, nothing of ours: the template of fresh DBs
# The issuer of every token, fixed like the supabase CLI's so that tokens of every stack look alike.
JWT_ISSUER=http://127.0.0.1:54321/auth/v1
SERVICES=(frontend gateway postgrest storage auth redis redis-c1 redis-c2 redis-c3)

# ---------------------------------------------------------------------------------------------------------- helpers

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port PREFERRED: the preferred port when given and free, else a random free one.
pick_port() {
	local preferred=$1 p i
	if [[ -n $preferred ]] && ! port_in_use "$preferred" && ! grep -qx "$preferred" "$STATE/ports" 2>/dev/null; then
		echo "$preferred" >>"$STATE/ports"
		echo "$preferred"
		return
	fi
	# Below the kernel's ephemeral range (32768+), so a stack port is never one the OS hands out for :0; each stack
	# name draws from its own quarter of 20000-31999, so that two stacks starting side by side rarely pick alike.
	local base=$((20000 + ($(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 4) * 3000))
	for ((i = 0; i < 200; i++)); do
		p=$((base + (RANDOM * 32768 + RANDOM) % 3000))
		if ! port_in_use "$p" && ! grep -qx "$p" "$STATE/ports" 2>/dev/null; then
			echo "$p" >>"$STATE/ports"
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# port_for NAME: the port NAME had before when it is free again (a service restarted by `start` keeps its address,
# so the gateway and running suparelay nodes find it), else a random free one.
port_for() {
	local prev
	prev=$(cat "$STATE/$1.port" 2>/dev/null || true)
	if [[ $prev =~ ^[0-9]+$ ]] && ! port_in_use "$prev"; then
		echo "$prev"
		return
	fi
	pick_port ""
}

# dev_port PORT: PORT for the dev stack, nothing (= random) for the others.
dev_port() { if [[ $NAME == dev ]]; then echo "$1"; fi; }

# alive NAME: the process recorded in pids/NAME.pid is running.
alive() {
	local f="$PIDS/$1.pid" pid
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# spawn NAME CMD…: start CMD detached in its own session, logging to logs/NAME.log, pid in pids/NAME.pid.
# With AS_SERVICE=1 it runs as the unprivileged user (when root).
spawn() {
	local name=$1
	shift
	local runner=()
	if [[ ${AS_SERVICE:-0} == 1 ]] && is_root; then
		runner=(runuser -u "$SERVICE_USER" -- env HOME="$SVC_HOME/home")
	fi
	rm -f "$PIDS/$name.pid"
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDS/$name.pid" "${runner[@]}" "$@" \
		</dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$PIDS/$name.pid" ]] && break
		sleep 0.1
	done
	[[ -s "$PIDS/$name.pid" ]] || die "$name did not start (see $LOGS/$name.log)"
	STARTED+=("$name")
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
	die "$name did not answer $url within ${secs}s (log: $LOGS/$name.log)"
}

# running_on NAME: the port a live service was started on, or nothing.
running_on() { if alive "$1" && [[ -f $STATE/$1.port ]]; then cat "$STATE/$1.port"; fi; }

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

# as_pg CMD…: a PostgreSQL server command as the owner of the cluster (initdb refuses root).
as_pg() { SERVICE_HOME="$SVC_HOME/home" as_service "$@"; }

# svc_home: the folder of what the unprivileged user writes (the cluster, Storage's files, its HOME). Normally
# .stack/<name>/svc; when root and that user cannot reach the work tree, or the socket path would be too long, a
# folder under /var/tmp, remembered in .stack/<name>/svcdir.
svc_home() {
	if [[ -f "$STATE/svcdir" ]]; then
		cat "$STATE/svcdir"
		return
	fi
	local dir="$STATE/svc"
	mkdir -p "$dir"
	if is_root; then
		chown "$SERVICE_USER:" "$dir"
		if ! runuser -u "$SERVICE_USER" -- test -w "$dir"; then
			dir="/var/tmp/suparelay-stack-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
		fi
	fi
	if ((${#dir} > 80)); then
		dir="/tmp/suparelay-stack-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)"
	fi
	mkdir -p "$dir"
	if is_root; then chown "$SERVICE_USER:" "$dir" && chmod 700 "$dir"; fi
	echo "$dir" >"$STATE/svcdir"
	echo "$dir"
}

# svc_mkdir DIR…: folders the unprivileged user owns.
svc_mkdir() {
	mkdir -p "$@"
	if is_root; then chown "$SERVICE_USER:" "$@"; fi
}

psql_super() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# db_url USER DB: a loopback connection URL (trust authentication, no password).
db_url() { echo "postgres://$1@127.0.0.1:$PG_PORT/$2?sslmode=disable"; }

# ---------------------------------------------------------------------------------------------------------- postgres

start_pg() {
	local bin data
	bin=$(pg_bindir)
	if [[ -z $bin || ! -x $bin/initdb ]]; then
		need_apt postgresql
		bin=$(pg_bindir)
	fi
	[[ -x $bin/initdb ]] || die "initdb not found (set PG_BIN)"
	need_cmd psql postgresql-client
	data="$SVC_HOME/pg"
	if [[ ! -f $data/PG_VERSION ]]; then
		log "initdb $data"
		rm -rf "$data" "$STATE/applied" "$STATE/base.sum"
		svc_mkdir "$data"
		as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$LOGS/initdb.log" 2>&1 ||
			die "initdb failed (see $LOGS/initdb.log)"
	fi
	echo "$bin" >"$STATE/pg.bin"
	echo "$data" >"$STATE/pg.data"
	if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		PG_PORT=$(<"$STATE/pg.port")
		log "PostgreSQL already running on $PG_PORT"
	else
		PG_PORT=$(pick_port "$(dev_port 54322)")
		svc_mkdir "$SVC_HOME/run"
		# Fast and unsafe durability settings are fine for a throw-away dev/test cluster.
		as_pg "$bin/pg_ctl" -D "$data" -l "$SVC_HOME/postgres.log" -w -t 60 -s start -o \
			"-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$SVC_HOME/run -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_min_messages=warning" ||
			{
				tail -n 30 "$SVC_HOME/postgres.log" >&2 || true
				die "PostgreSQL did not start"
			}
		echo "$PG_PORT" >"$STATE/pg.port"
		STARTED+=(postgres)
		ln -sf "$SVC_HOME/postgres.log" "$LOGS/postgres.log"
		log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $data)"
	fi
	ADMIN_URL=$(db_url postgres postgres)
	DATABASE_URL=$(db_url postgres "$DB_NAME")
}

db_exists() { [[ -n $(psql_super "$ADMIN_URL" -tAc "select 1 from pg_database where datname = '$1'") ]]; }

# auth_env: the environment of Supabase Auth, for `auth migrate` (DB given) and `auth serve`.
auth_env() {
	local db=$1
	cat <<EOF
DATABASE_URL=$(db_url supabase_auth_admin "$db")
GOTRUE_DB_DRIVER=postgres
DB_NAMESPACE=auth
GOTRUE_DB_MAX_POOL_SIZE=20
GOTRUE_DB_MAX_IDLE_POOL_SIZE=20
API_EXTERNAL_URL=${SUPABASE_URL:-http://127.0.0.1}/auth/v1
GOTRUE_API_HOST=127.0.0.1
PORT=${AUTH_PORT:-0}
GOTRUE_SITE_URL=${APP_URL:-http://127.0.0.1:3000}
GOTRUE_URI_ALLOW_LIST=${APP_URL:-http://127.0.0.1:3000}/**
GOTRUE_JWT_SECRET=$KEY_SUPABASE_JWT_SECRET
GOTRUE_JWT_KEYS=$KEY_GOTRUE_JWT_KEYS
GOTRUE_JWT_VALID_METHODS=HS256,RS256,ES256
GOTRUE_JWT_EXP=3600
GOTRUE_JWT_AUD=authenticated
GOTRUE_JWT_ISSUER=$JWT_ISSUER
GOTRUE_JWT_DEFAULT_GROUP_NAME=authenticated
GOTRUE_JWT_ADMIN_ROLES=service_role
GOTRUE_DISABLE_SIGNUP=false
GOTRUE_EXTERNAL_EMAIL_ENABLED=false
GOTRUE_EXTERNAL_PHONE_ENABLED=true
GOTRUE_SMS_AUTOCONFIRM=true
GOTRUE_SMS_PROVIDER=twilio
GOTRUE_SMS_TWILIO_ACCOUNT_SID=ACdevstack00000000000000000000000
GOTRUE_SMS_TWILIO_AUTH_TOKEN=placeholder-test-numbers-never-reach-twilio
GOTRUE_SMS_TWILIO_MESSAGE_SERVICE_SID=MGdevstack00000000000000000000000
GOTRUE_SMS_TEST_OTP=$(devstack test-otps)
GOTRUE_SMS_MAX_FREQUENCY=2s
GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED=true
GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL=10
GOTRUE_RATE_LIMIT_SMS_SENT=100000
GOTRUE_RATE_LIMIT_VERIFY=100000
GOTRUE_RATE_LIMIT_TOKEN_REFRESH=100000
GOTRUE_RATE_LIMIT_OTP=100000
GOTRUE_RATE_LIMIT_EMAIL_SENT=100000
GOTRUE_LOG_LEVEL=warn
EOF
}

# in_env FILE CMD…: run CMD with exactly the variables of FILE added (one NAME=value per line).
in_env() {
	local file=$1 vars=()
	shift
	mapfile -t vars <"$file"
	env "${vars[@]}" "$@"
}

# storage_env DB: the environment of Supabase Storage.
storage_env() {
	local db=$1
	cat <<EOF
NODE_ENV=production
SERVER_HOST=127.0.0.1
SERVER_PORT=${STORAGE_PORT:-0}
TENANT_ID=stub
REGION=local
DATABASE_URL=$(db_url supabase_storage_admin "$db")
DB_INSTALL_ROLES=false
DB_SUPER_USER=supabase_storage_admin
AUTH_JWT_SECRET=$KEY_SUPABASE_JWT_SECRET
AUTH_JWT_ALGORITHM=HS256
JWT_JWKS=$KEY_JWKS
SERVICE_KEY=$KEY_SUPABASE_SERVICE_ROLE_KEY
ANON_KEY=$KEY_SUPABASE_ANON_KEY
STORAGE_BACKEND=file
STORAGE_FILE_BACKEND_PATH=$SVC_HOME/storage
STORAGE_S3_BUCKET=stub
GLOBAL_S3_BUCKET=stub
FILE_SIZE_LIMIT=2147483648
UPLOAD_SIGNED_URL_EXPIRATION_TIME=120
PG_QUEUE_ENABLE=false
IMAGE_TRANSFORMATION_ENABLED=false
LOG_LEVEL=warn
EOF
}

# prepare_base: the template database — our bootstrap, then the real Auth and Storage migrations — rebuilt when
# any of them changes. Every database of the stack (and of the schema tests) starts as a copy of it.
prepare_base() {
	local sum
	sum=$(cat "$ROOT/scripts/sql/bootstrap.sql" "$AUTH_BIN" "$STORAGE_DIR/.built" 2>/dev/null | sha256sum | cut -c1-16)
	sum="$sum-$(vendor_key "$AUTH_ARCHIVE")-$(vendor_key "$STORAGE_ARCHIVE")"
	if [[ ${STACK_FRESH:-0} != 1 ]] && db_exists "$BASE_DB" && [[ $(cat "$STATE/base.sum" 2>/dev/null) == "$sum" ]]; then
		return 0
	fi
	log "preparing the template database $BASE_DB (bootstrap, Supabase Auth and Storage migrations)"
	psql_super "$ADMIN_URL" -c "drop database if exists $BASE_DB with (force)" -c "create database $BASE_DB"
	psql_super "$(db_url postgres "$BASE_DB")" -f "$ROOT/scripts/sql/bootstrap.sql" >>"$LOGS/sql.log" 2>&1 ||
		die "bootstrap.sql failed (see $LOGS/sql.log)"
	auth_env "$BASE_DB" >"$STATE/auth-migrate.env"
	in_env "$STATE/auth-migrate.env" "$AUTH_BIN" migrate >>"$LOGS/auth-migrate.log" 2>&1 ||
		{
			tail -n 20 "$LOGS/auth-migrate.log" >&2
			die "auth migrate failed (see $LOGS/auth-migrate.log)"
		}
	storage_env "$BASE_DB" >"$STATE/storage-migrate.env"
	chmod 644 "$STATE/storage-migrate.env"
	(cd "$STORAGE_DIR" && in_env "$STATE/storage-migrate.env" env PATH="$NODE_BIN:$PATH" \
		"$NODE_BIN/node" dist/scripts/migrate-call.js) >>"$LOGS/storage-migrate.log" 2>&1 ||
		{
			tail -n 20 "$LOGS/storage-migrate.log" >&2
			die "Storage migrations failed (see $LOGS/storage-migrate.log)"
		}
	[[ $(psql_super "$(db_url postgres "$BASE_DB")" -tAc "select to_regclass('storage.objects') is not null and to_regclass('auth.users') is not null") == t ]] ||
		die "the template lacks auth.users or storage.objects after the migrations"
	echo "$sum" >"$STATE/base.sum"
	# A new template means the databases made from the old one are stale.
	psql_super "$ADMIN_URL" -c "drop database if exists $DB_NAME with (force)"
	rm -f "$STATE/applied"
}

# apply_sql: the stack database, copied from the template; then the bootstrap, with STACK_PRODUCTION=1 the original
# app's 105 production migrations (a production database, as every existing deployment has), our migrations in file
# order (without the *_cutover_* ones when STACK_CUTOVER=0) and the seed. Each file runs once, in one transaction;
# a file whose content changed after it was applied is reported, not re-run (use STACK_FRESH=1).
apply_sql() {
	if ! db_exists "$DB_NAME"; then
		psql_super "$ADMIN_URL" -c "create database $DB_NAME template $BASE_DB"
		rm -f "$STATE/applied"
	fi
	# The bootstrap again: a copy of a database does not carry its settings (the search_path of extensions).
	local files=("$ROOT/scripts/sql/bootstrap.sql") f sum rel n=0
	if [[ ${STACK_PRODUCTION:-0} == 1 ]]; then
		local prod="$CACHE/frontend/$(vendor_key "$FRONTEND_ARCHIVE")"
		mkdir -p "$(dirname "$prod")"
		vendor_extract "$FRONTEND_ARCHIVE" "$prod"
		while IFS= read -r f; do files+=("$f"); done < <(printf '%s\n' "$prod"/supabase/migrations/*.sql | LC_ALL=C sort)
	fi
	while IFS= read -r f; do
		if [[ ${STACK_CUTOVER:-1} == 0 && $(basename "$f") == *_cutover_* ]]; then
			log "not applying $(basename "$f") (STACK_CUTOVER=0: the original server keeps serving)"
			continue
		fi
		files+=("$f")
	done < <(printf '%s\n' "$ROOT"/supabase/migrations/*.sql | LC_ALL=C sort)
	files+=("$ROOT/supabase/seed.sql")
	touch "$STATE/applied"
	for f in "${files[@]}"; do
		rel=${f#"$ROOT"/}
		rel=${rel#"$CACHE"/}
		sum=$(sha256sum "$f" | cut -c1-16)
		if grep -q "^$rel " "$STATE/applied"; then
			grep -qx "$rel $sum" "$STATE/applied" || warn "$rel changed since it was applied; run with STACK_FRESH=1 to re-apply"
			continue
		fi
		psql_super "$DATABASE_URL" -1 -f "$f" >>"$LOGS/sql.log" 2>&1 || {
			tail -n 20 "$LOGS/sql.log" >&2
			die "applying $rel failed (see $LOGS/sql.log)"
		}
		echo "$rel $sum" >>"$STATE/applied"
		n=$((n + 1))
	done
	log "applied $n SQL file(s) to $DB_NAME"
	# A PostgREST already running keeps its schema cache until told: new functions would answer 404 otherwise.
	if ((n > 0)); then psql_super "$DATABASE_URL" -c "notify pgrst, 'reload schema'" >/dev/null; fi
}

# ---------------------------------------------------------------------------------------------------------- services

start_auth() {
	if AUTH_PORT=$(running_on auth) && [[ -n $AUTH_PORT ]]; then
		AUTH_URL="http://127.0.0.1:$AUTH_PORT"
		return
	fi
	AUTH_PORT=$(port_for auth)
	AUTH_URL="http://127.0.0.1:$AUTH_PORT"
	auth_env "$DB_NAME" >"$STATE/auth.env"
	local vars=()
	mapfile -t vars <"$STATE/auth.env"
	spawn auth env "${vars[@]}" "$AUTH_BIN" serve
	echo "$AUTH_PORT" >"$STATE/auth.port"
	wait_http auth "$AUTH_URL/health" 60
	log "Supabase Auth $AUTH_VERSION at $AUTH_URL"
}

start_storage() {
	if STORAGE_PORT=$(running_on storage) && [[ -n $STORAGE_PORT ]]; then
		STORAGE_URL="http://127.0.0.1:$STORAGE_PORT"
		return
	fi
	STORAGE_PORT=$(port_for storage)
	STORAGE_URL="http://127.0.0.1:$STORAGE_PORT"
	svc_mkdir "$SVC_HOME/storage" "$SVC_HOME/home"
	storage_env "$DB_NAME" >"$STATE/storage.env"
	chmod 644 "$STATE/storage.env"
	cp "$STATE/storage.env" "$SVC_HOME/storage.env" && if is_root; then chown "$SERVICE_USER:" "$SVC_HOME/storage.env"; fi
	# Storage reads ./migrations and ./.env relative to its folder; it runs from there.
	AS_SERVICE=1 spawn storage bash -c 'cd "$1" && mapfile -t v <"$2" && exec env "${v[@]}" PATH="$3:$PATH" "$3/node" dist/start/server.js' \
		_ "$STORAGE_DIR" "$SVC_HOME/storage.env" "$NODE_BIN"
	echo "$STORAGE_PORT" >"$STATE/storage.port"
	wait_http storage "$STORAGE_URL/status" 90
	log "Supabase Storage at $STORAGE_URL"
}

start_postgrest() {
	if POSTGREST_PORT=$(running_on postgrest) && [[ -n $POSTGREST_PORT ]]; then
		POSTGREST_URL="http://127.0.0.1:$POSTGREST_PORT"
		return
	fi
	POSTGREST_PORT=$(port_for postgrest)
	POSTGREST_URL="http://127.0.0.1:$POSTGREST_PORT"
	PGRST_DB_URI=$(db_url authenticator "$DB_NAME") \
		PGRST_DB_SCHEMAS=public,storage \
		PGRST_DB_ANON_ROLE=anon \
		PGRST_JWT_SECRET="$KEY_POSTGREST_JWKS" \
		PGRST_JWT_AUD=authenticated \
		PGRST_DB_EXTRA_SEARCH_PATH=public,extensions \
		PGRST_DB_MAX_ROWS=1000 \
		PGRST_DB_POOL=10 \
		PGRST_DB_CHANNEL_ENABLED=true \
		PGRST_SERVER_HOST=127.0.0.1 \
		PGRST_SERVER_PORT="$POSTGREST_PORT" \
		PGRST_LOG_LEVEL=warn \
		spawn postgrest "$POSTGREST_BIN"
	echo "$POSTGREST_PORT" >"$STATE/postgrest.port"
	wait_http postgrest "$POSTGREST_URL/" 60
	log "PostgREST $POSTGREST_VERSION at $POSTGREST_URL"
}

# The gateway must know its own port before Auth starts (Auth's external URL), so it is chosen early.
choose_gateway_port() {
	if GATEWAY_PORT=$(running_on gateway) && [[ -n $GATEWAY_PORT ]]; then
		:
	elif [[ -f $STATE/gateway.port ]] && ! port_in_use "$(<"$STATE/gateway.port")"; then
		GATEWAY_PORT=$(<"$STATE/gateway.port")
	else
		GATEWAY_PORT=$(pick_port "${STACK_GATEWAY_PORT:-$(dev_port 54321)}")
	fi
	SUPABASE_URL="http://127.0.0.1:$GATEWAY_PORT"
}

start_gateway() {
	local sum
	sum=$(sha256sum "$DEVSTACK_BIN" | cut -c1-16)-$AUTH_PORT-$POSTGREST_PORT-$STORAGE_PORT
	if alive gateway && [[ $(cat "$STATE/gateway.sum" 2>/dev/null) != "$sum" ]]; then
		log "gateway or its upstreams changed: restarting it"
		stop_pid gateway devstack
	fi
	alive gateway && return 0
	spawn gateway "$DEVSTACK_BIN" gateway -addr "127.0.0.1:$GATEWAY_PORT" -auth "$AUTH_URL" -rest "$POSTGREST_URL" -storage "$STORAGE_URL"
	echo "$GATEWAY_PORT" >"$STATE/gateway.port"
	echo "$sum" >"$STATE/gateway.sum"
	wait_http gateway "$SUPABASE_URL/healthz" 30
	log "gateway (Supabase URL) at $SUPABASE_URL: /auth/v1 /rest/v1 /storage/v1"
}

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

# redis_save PORT: SAVE (a snapshot in the server's --dir, loaded by its next start), answered +OK.
redis_save() {
	local reply=""
	{
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf 'SAVE\r\n' >&3
		IFS= read -r -t 30 reply <&3 || true
		exec 3>&-
	} 2>/dev/null || return 1
	[[ $reply == +OK* ]]
}

# start_redis: a private redis-server, always — never silently one that happens to listen on 6379.
start_redis() {
	if [[ -n ${STACK_REDIS_URL:-} ]]; then
		REDIS_URL=$STACK_REDIS_URL
		log "using STACK_REDIS_URL (shared with whatever else uses it)"
		return
	fi
	local port
	if port=$(running_on redis) && [[ -n $port ]] && redis_pings 127.0.0.1 "$port"; then
		REDIS_URL="redis://127.0.0.1:$port/0"
		return
	fi
	need_cmd redis-server redis-server
	port=$(port_for redis)
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

# start_redis_cluster: three redis-servers in cluster mode (three masters, no replicas) on loopback, for the tests
# that must hold on Redis Cluster too (the broker, the limiter, the locks). STACK_REDIS_CLUSTER=0 skips it.
start_redis_cluster() {
	REDIS_CLUSTER_ADDRS=""
	[[ ${STACK_REDIS_CLUSTER:-1} == 1 ]] || return 0
	local i port bus addrs=() all_up=1
	for i in 1 2 3; do
		if port=$(running_on "redis-c$i") && [[ -n $port ]] && redis_pings 127.0.0.1 "$port"; then
			addrs+=("127.0.0.1:$port")
		else
			all_up=0
		fi
	done
	if ((all_up)); then
		REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}")
		return 0
	fi
	need_cmd redis-cli redis-tools
	addrs=()
	for i in 1 2 3; do
		stop_pid "redis-c$i" redis-server
		port=$(port_for "redis-c$i")
		# The cluster bus gets a port of its own from the stack's range: by default it is port+10000, which
		# lands in the kernel's ephemeral range, where a client's connection may already hold it (seen once).
		bus=$(port_for "redis-c$i-bus")
		rm -rf "$STATE/redis-c$i"
		mkdir -p "$STATE/redis-c$i"
		spawn "redis-c$i" redis-server --bind 127.0.0.1 --port "$port" --cluster-port "$bus" --save "" \
			--appendonly no --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
			--dir "$STATE/redis-c$i"
		echo "$port" >"$STATE/redis-c$i.port"
		echo "$bus" >"$STATE/redis-c$i-bus.port"
		addrs+=("127.0.0.1:$port")
	done
	local a
	for a in "${addrs[@]}"; do
		for ((i = 0; i < 100; i++)); do
			redis_pings 127.0.0.1 "${a#*:}" && break
			sleep 0.1
		done
		redis_pings 127.0.0.1 "${a#*:}" || die "redis-server (cluster node $a) did not start (see $LOGS)"
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$LOGS/redis-cluster.log" 2>&1 ||
		die "redis-cli --cluster create failed (see $LOGS/redis-cluster.log)"
	for ((i = 0; i < 100; i++)); do
		[[ $(redis-cli -h 127.0.0.1 -p "${addrs[0]#*:}" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state:') == cluster_state:ok ]] && break
		sleep 0.1
	done
	REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}")
	log "Redis Cluster (3 masters) at $REDIS_CLUSTER_ADDRS"
}

# choose_app_port: where suparelay serves the app. The frontend is built for that origin, so a stable port means
# the cached build is reused.
choose_app_port() {
	local want=${STACK_APP_PORT:-}
	if [[ -z $want ]]; then
		if [[ $NAME == dev ]]; then want=3000; else want=54330; fi
	fi
	if [[ -f $STATE/app.port ]] && alive frontend; then
		APP_PORT=$(<"$STATE/app.port")
	else
		APP_PORT=$(pick_port "$want")
	fi
	echo "$APP_PORT" >"$STATE/app.port"
	APP_URL="http://127.0.0.1:$APP_PORT"
}

# start_frontend: the QryptChat app's adapter-node server (pages and assets; its own /api routes are the original
# server, which suparelay replaces in front of it).
start_frontend() {
	[[ $FRONTEND_MODE != none ]] || return 0
	local sum port public=$APP_URL what="(pages)"
	if [[ $FRONTEND_MODE == original ]]; then
		public=$SUPABASE_URL
		what="(the ORIGINAL server: pages and its own /api)"
	fi
	sum=$(printf '%s %s %s xff' "$FRONTEND_BUILD" "$APP_URL" "$FRONTEND_MODE" | sha256sum | cut -c1-16)
	if alive frontend && [[ $(cat "$STATE/frontend.sum" 2>/dev/null) != "$sum" ]]; then
		stop_pid frontend node
	fi
	if port=$(running_on frontend) && [[ -n $port ]]; then
		FRONTEND_URL="http://127.0.0.1:$port"
		return
	fi
	if [[ $FRONTEND_MODE == original ]]; then
		port=$APP_PORT # the original server is the app
	else
		port=$(pick_port "")
	fi
	FRONTEND_URL="http://127.0.0.1:$port"
	svc_mkdir "$SVC_HOME/home"
	# The original server limits auth requests per client address; like a deployment behind a proxy, it takes the
	# address from X-Forwarded-For, so that tests can give each simulated user its own.
	AS_SERVICE=1 spawn frontend env PORT="$port" HOST=127.0.0.1 ORIGIN="$APP_URL" NODE_ENV=production \
		ADDRESS_HEADER=X-Forwarded-For XFF_DEPTH=1 \
		PUBLIC_SUPABASE_URL="$public" SUPABASE_SERVICE_ROLE_KEY="$KEY_SUPABASE_SERVICE_ROLE_KEY" \
		"$NODE_BIN/node" "$FRONTEND_BUILD/index.js"
	echo "$port" >"$STATE/frontend.port"
	echo "$sum" >"$STATE/frontend.sum"
	wait_http frontend "$FRONTEND_URL/" 60
	log "QryptChat frontend $what at $FRONTEND_URL, built for $public"
}

# ---------------------------------------------------------------------------------------------------------- commands

put() { printf "export %s='%s'\n" "$1" "$2"; }

write_env() {
	local P=${STACK_ENV_PREFIX:-SUPARELAY_TEST}
	{
		echo "# written by scripts/stack.sh ($NAME) — development only"
		put STACK_NAME "$NAME"
		put "${P}_SUPABASE_URL" "$SUPABASE_URL"
		put "${P}_POSTGREST_URL" "$POSTGREST_URL"
		put "${P}_AUTH_URL" "$AUTH_URL"
		put "${P}_STORAGE_URL" "$STORAGE_URL"
		put "${P}_DATABASE_URL" "$DATABASE_URL"
		put "${P}_TEMPLATE_DB" "$BASE_DB"
		put "${P}_REDIS_URL" "$REDIS_URL"
		put "${P}_REDIS_CLUSTER_ADDRS" "${REDIS_CLUSTER_ADDRS:-}"
		put "${P}_APP_URL" "$APP_URL"
		put "${P}_FRONTEND_URL" "${FRONTEND_URL:-}"
		put "${P}_NODE_BIN" "$NODE_BIN"
		put "${P}_SUPABASE_CLI" "$SUPABASE_CLI"
		if [[ $P == SUPARELAY_TEST ]]; then
			put SUPABASE_URL "$SUPABASE_URL"
			put SUPABASE_ANON_KEY "$KEY_SUPABASE_ANON_KEY"
			put SUPABASE_SERVICE_ROLE_KEY "$KEY_SUPABASE_SERVICE_ROLE_KEY"
			put SUPABASE_JWT_SECRET "$KEY_SUPABASE_JWT_SECRET"
			put REDIS_URL "$REDIS_URL"
			put DATABASE_URL "$DATABASE_URL"
			put POSTGREST_URL "$POSTGREST_URL"
		fi
	} >"$STATE/env.tmp"
	mv "$STATE/env.tmp" "$STATE/env"
	if [[ $NAME == dev ]]; then cp "$STATE/env" "$ROOT/.stack/env"; fi
}

# devstack ARGS…: the stack's helper binary (built from cmd/devstack).
devstack() { "$DEVSTACK_BIN" "$@"; }

build_devstack() {
	DEVSTACK_BIN="$STATE/bin/devstack"
	mkdir -p "$STATE/bin"
	(cd "$ROOT" && go build -o "$DEVSTACK_BIN" ./cmd/devstack) || die "go build ./cmd/devstack failed"
	local line
	while IFS= read -r line; do
		[[ $line == *=* ]] || continue
		printf -v "KEY_${line%%=*}" '%s' "${line#*=}"
	done < <(devstack keys)
}

# on_failure: a failed `up` stops what it started, so nothing is left running half-configured.
on_failure() {
	local rc=$?
	((rc == 0)) && return 0
	if ((${#STARTED[@]})); then
		warn "up failed: stopping what this run started (${STARTED[*]})"
		local s
		for s in "${SERVICES[@]}" postgres; do
			[[ " ${STARTED[*]} " == *" $s "* ]] || continue
			if [[ $s == postgres ]]; then stop_pg; else stop_pid "$s" ""; fi
		done
	fi
	exit "$rc"
}

cmd_up() {
	STARTED=()
	trap on_failure EXIT
	if [[ ${STACK_FRESH:-0} == 1 ]]; then cmd_down quiet; fi
	mkdir -p "$PIDS" "$LOGS"
	: >"$STATE/ports"
	need_cmd curl curl
	command -v go >/dev/null || die "go is not on PATH"
	ensure_service_user
	SVC_HOME=$(svc_home)
	# The long first-run steps say what they do and how far along they are; later runs find them cached.
	case ${STACK_FRONTEND:-app} in
	1 | app) FRONTEND_MODE=app ;;
	original) FRONTEND_MODE=original ;;
	0 | none) FRONTEND_MODE=none ;;
	*) die "STACK_FRONTEND must be app, original or 0" ;;
	esac
	local n=2
	[[ $FRONTEND_MODE != none ]] && n=4
	STEP_K=1 STEP_N=$n ensure_auth
	STEP_K=2 STEP_N=$n ensure_storage
	ensure_postgrest
	ensure_node
	ensure_supabase_cli
	build_devstack
	choose_gateway_port
	choose_app_port
	if [[ $FRONTEND_MODE != none ]]; then
		local built_for=$APP_URL
		[[ $FRONTEND_MODE == original ]] && built_for=$SUPABASE_URL
		STEP_K=3 STEP_N=$n ensure_frontend_deps
		STEP_K=4 STEP_N=$n ensure_frontend_build "$built_for" "$KEY_SUPABASE_ANON_KEY" "$KEY_SUPABASE_SERVICE_ROLE_KEY"
	fi
	start_pg
	prepare_base
	apply_sql
	start_auth
	start_storage
	start_postgrest
	start_gateway
	start_redis
	start_redis_cluster
	start_frontend
	write_env
	trap - EXIT
	log "up — env in ${STATE#"$ROOT"/}/env (source it); Supabase URL $SUPABASE_URL, app $APP_URL"
}

# stop_pid NAME BINARY: stop a recorded process and its session if it is still ours (its command line names BINARY).
stop_pid() {
	local name=$1 bin=$2 f="$PIDS/$1.pid" pid i
	[[ -f $f ]] || return 0
	pid=$(<"$f")
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		{ [[ -z $bin ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$bin"; }; then
		# Each service is its own session leader (setsid): signal the whole group, helpers included.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		[[ ${quiet:-} ]] || log "stopped $name ($pid)"
	fi
	rm -f "$f"
}

stop_pg() {
	local data bin
	data=$(cat "$STATE/pg.data" 2>/dev/null || true)
	bin=$(cat "$STATE/pg.bin" 2>/dev/null || true)
	if [[ -n $data && -x $bin/pg_ctl && -f $data/PG_VERSION ]]; then
		SVC_HOME=$(cat "$STATE/svcdir" 2>/dev/null || echo /tmp)
		if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			as_pg "$bin/pg_ctl" -D "$data" -m fast -w -s stop || warn "pg_ctl stop failed"
			[[ ${quiet:-} ]] || log "stopped PostgreSQL ($data)"
		fi
	fi
}

cmd_down() {
	local quiet=${1:-}
	[[ -d $STATE ]] || return 0
	stop_pid frontend node
	stop_pid gateway devstack
	stop_pid postgrest postgrest
	stop_pid storage node
	stop_pid auth auth
	stop_pid redis redis-server
	stop_pid redis-c1 redis-server
	stop_pid redis-c2 redis-server
	stop_pid redis-c3 redis-server
	rm -f "$STATE/redis/dump.rdb" # down means the data is gone (only `stop redis --keep` keeps it)
	stop_pg
	[[ $quiet ]] || log "down"
}

cmd_status() {
	local s rc=0
	for s in "${SERVICES[@]}"; do
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
	SVC_HOME=$(cat "$STATE/svcdir" 2>/dev/null || echo /tmp)
	if [[ -n $data ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
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
	flock -w 600 9 || die "another stack.sh holds $STATE/.lock"
}

# cmd_stop SERVICE [--keep]: stop one service of a running stack (the fault tests' outages). For redis, --keep first
# writes a snapshot that the next start loads (a restart with persistence); without it the data is gone.
cmd_stop() {
	local svc=${1:-} keep=${2:-}
	case $svc in
	auth) stop_pid auth auth ;;
	storage) stop_pid storage node ;;
	postgrest) stop_pid postgrest postgrest ;;
	redis)
		local port
		port=$(cat "$STATE/redis.port" 2>/dev/null || true)
		if [[ $keep == --keep && -n $port ]]; then
			redis_save "$port" || die "redis SAVE failed"
		fi
		stop_pid redis redis-server
		[[ $keep == --keep ]] || rm -f "$STATE/redis/dump.rdb"
		;;
	*) die "stop: SERVICE must be auth, storage, postgrest or redis" ;;
	esac
}

# cmd_start SERVICE: start one stopped service of a stack that is up, on the port it had.
cmd_start() {
	local svc=${1:-}
	[[ -f $STATE/env ]] || die "start: the stack is not up"
	SVC_HOME=$(svc_home)
	STARTED=()
	ensure_auth >/dev/null
	ensure_storage >/dev/null
	ensure_postgrest
	ensure_node
	build_devstack
	choose_gateway_port
	choose_app_port
	start_pg >/dev/null
	case $svc in
	auth) start_auth ;;
	storage) start_storage ;;
	postgrest) start_postgrest ;;
	redis) start_redis ;;
	*) die "start: SERVICE must be auth, storage, postgrest or redis" ;;
	esac
}

case ${1:-} in
up) lock && cmd_up ;;
stop) lock && cmd_stop "${2:-}" "${3:-}" ;;
start) lock && cmd_start "${2:-}" ;;
down) lock && cmd_down ;;
status) cmd_status ;;
env)
	[[ -f "$STATE/env" ]] || die "no env: run scripts/stack.sh up first"
	cat "$STATE/env"
	;;
*)
	echo "usage: STACK_NAME=<name> $0 up|down|status|env|stop SERVICE [--keep]|start SERVICE" >&2
	exit 2
	;;
esac
