# common.sh — shared helpers of the stack, dev and test scripts. Sourced, never run.
#
# Provides: logging (log/warn/die), progress for long first-run steps (step k of n with elapsed time on a
# terminal, one plain line per step otherwise), Debian package installation, the unprivileged service user, the
# build cache folder and the vendored source archives.
#
# Callers set LOG_TAG (the prefix of every message) before sourcing.

: "${LOG_TAG:=suparelay}"
SCRIPTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

log() { printf '%s: %s\n' "$LOG_TAG" "$*" >&2; }
warn() { printf '%s: WARNING: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
	printf '%s: ERROR: %s\n' "$LOG_TAG" "$*" >&2
	exit 1
}
is_root() { [[ $(id -u) -eq 0 ]]; }
on_tty() { [[ -t 2 && ${CI:-} != true ]]; }

# The unprivileged OS user that owns the private PostgreSQL cluster and runs the Node servers when we are root.
SERVICE_USER=suparelay

# ------------------------------------------------------------------------------------------------ progress

# run_step K N TITLE CMD…: run a long step with its output in a log file (PROGRESS_LOG, default /dev/null for
# output that is not wanted). On a terminal a ticker shows "[k/n] title … 42s"; otherwise one line at the start
# and one at the end. On failure the last lines of the log are shown.
run_step() {
	local k=$1 n=$2 title=$3 logf=${PROGRESS_LOG:-/dev/null} t0=$SECONDS rc=0 ticker=""
	shift 3
	[[ $logf == /dev/null ]] || mkdir -p "$(dirname "$logf")"
	if on_tty; then
		(
			while sleep 1; do printf '\r%s: [%s/%s] %s … %ss ' "$LOG_TAG" "$k" "$n" "$title" $((SECONDS - t0)) >&2; done
		) &
		ticker=$!
	else
		log "[$k/$n] $title"
	fi
	"$@" >>"$logf" 2>&1 9>&- || rc=$?
	if [[ -n $ticker ]]; then
		kill "$ticker" 2>/dev/null || true
		wait "$ticker" 2>/dev/null || true
		printf '\r\033[K' >&2
	fi
	if ((rc != 0)); then
		[[ $logf != /dev/null ]] && tail -n 40 "$logf" >&2
		die "[$k/$n] $title failed after $((SECONDS - t0))s (exit $rc; log: $logf)"
	fi
	log "[$k/$n] $title: done in $((SECONDS - t0))s"
}

# ------------------------------------------------------------------------------------------------ Debian packages

# need_apt PKG…: install Debian packages (root only; otherwise say what to install and fail).
need_apt() {
	is_root || die "missing $* and this is not root: install with apt-get install $*"
	log "installing $* from Debian"
	local stamp=/var/lib/apt/periodic/suparelay-update-stamp
	if [[ ! -f $stamp ]] || [[ -n $(find "$stamp" -mmin +600 2>/dev/null) ]]; then
		apt-get update -qq >&2 || die "apt-get update failed"
		mkdir -p "$(dirname "$stamp")" && touch "$stamp"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
		die "apt-get install $* failed"
}

# need_cmd CMD PKG: install PKG when CMD is not on PATH.
need_cmd() { command -v "$1" >/dev/null || need_apt "$2"; }

# ensure_service_user: create the unprivileged user when root (initdb refuses root; Node servers drop to it).
ensure_service_user() {
	is_root || return 0
	id -u "$SERVICE_USER" >/dev/null 2>&1 && return 0
	log "creating system user $SERVICE_USER (runs PostgreSQL and the Node servers of the stack)"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
}

# as_service CMD…: run CMD as the unprivileged user when root, as ourselves otherwise. HOME points at a folder the
# user may write (npm and node-gyp want one).
as_service() {
	if is_root; then
		(cd / && runuser -u "$SERVICE_USER" -- env HOME="${SERVICE_HOME:-/tmp}" "$@" 9>&-)
	else
		"$@" 9>&-
	fi
}

# ------------------------------------------------------------------------------------------------ cache

# The build cache lives outside the clone so that a fresh clone (CI's) reuses what an earlier run built:
# SUPARELAY_CACHE, else $XDG_CACHE_HOME/suparelay (~/.cache/suparelay). For root the default is
# /var/cache/suparelay instead — root's services run as the unprivileged user, which cannot enter /root; this is
# where systemd puts a system service's CacheDirectory=.
cache_dir() {
	local d
	if [[ -n ${SUPARELAY_CACHE:-} ]]; then
		d=$SUPARELAY_CACHE
	elif is_root; then
		d=/var/cache/suparelay
	else
		d=${XDG_CACHE_HOME:-$HOME/.cache}/suparelay
	fi
	mkdir -p "$d"
	if is_root; then chmod 755 "$d"; fi
	echo "$d"
}
CACHE=$(cache_dir)

# with_lock NAME CMD…: run CMD holding $CACHE/locks/NAME (two parallel builds of one artifact would collide).
with_lock() {
	local name=$1 fd
	shift
	mkdir -p "$CACHE/locks"
	exec {fd}>"$CACHE/locks/$name.lock"
	flock -w 1800 "$fd" || die "timed out waiting for $CACHE/locks/$name.lock"
	local rc=0
	"$@" || rc=$?
	exec {fd}>&-
	return $rc
}

# ------------------------------------------------------------------------------------------------ vendored sources

# The pinned source archives of the real components (see scripts/vendor.sha256). SUPARELAY_VENDOR names the
# folder; the default is ../shared/vendor beside the project.
vendor_dir() { echo "${SUPARELAY_VENDOR:-$SCRIPTS_ROOT/../shared/vendor}"; }

# vendor_archive NAME: the path of the archive NAME after checking its SHA-256 against scripts/vendor.sha256.
vendor_archive() {
	local name=$1 dir want got
	dir=$(vendor_dir)
	[[ -f $dir/$name ]] || die "vendored archive $name not found in $dir (set SUPARELAY_VENDOR)"
	want=$(awk -v n="$name" '$2 == n {print $1}' "$SCRIPTS_ROOT/scripts/vendor.sha256")
	[[ -n $want ]] || die "no SHA-256 recorded for $name in scripts/vendor.sha256"
	got=$(sha256sum "$dir/$name" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "$dir/$name: SHA-256 $got, expected $want"
	echo "$dir/$name"
}

# vendor_key NAME: a short cache key of an archive (its recorded hash).
vendor_key() { awk -v n="$1" '$2 == n {print substr($1, 1, 16)}' "$SCRIPTS_ROOT/scripts/vendor.sha256"; }

# vendor_extract NAME DEST: unpack the archive's single top-level folder as DEST (once).
vendor_extract() {
	local name=$1 dest=$2 archive tmp
	[[ -f $dest/.extracted ]] && return 0
	archive=$(vendor_archive "$name")
	tmp=$(mktemp -d "$(dirname "$dest")/.extract.XXXXXX")
	chmod 755 "$tmp" # mktemp makes it private; the unprivileged services must read it
	tar -xzf "$archive" -C "$tmp" --strip-components=1 || die "cannot unpack $archive"
	touch "$tmp/.extracted"
	rm -rf "$dest"
	mv "$tmp" "$dest"
}
