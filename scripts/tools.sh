#!/usr/bin/env bash
# tools.sh — build or locate one of the stack's programs (cached outside the clone, see scripts/lib/common.sh).
#
#   scripts/tools.sh node|postgrest|auth|storage|frontend-deps|supabase-cli   print the path of what was built
#   scripts/tools.sh frontend URL ANON_KEY SERVICE_KEY                         the frontend built for URL
#   scripts/tools.sh cache                                                     print the cache folder
set -euo pipefail
LOG_TAG=tools
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

case ${1:-} in
node) ensure_node && echo "$NODE_BIN" ;;
postgrest) ensure_postgrest && echo "$POSTGREST_BIN" ;;
auth) ensure_auth && echo "$AUTH_BIN" ;;
storage) ensure_storage && echo "$STORAGE_DIR" ;;
frontend-deps) ensure_frontend_deps && echo "$FRONTEND_DIR" ;;
frontend)
	(($# == 4)) || die "usage: $0 frontend URL ANON_KEY SERVICE_KEY"
	ensure_frontend_build "$2" "$3" "$4" && echo "$FRONTEND_BUILD"
	;;
supabase-cli) ensure_supabase_cli && echo "$SUPABASE_CLI" ;;
cache) echo "$CACHE" ;;
*)
	echo "usage: $0 node|postgrest|auth|storage|frontend-deps|frontend URL ANON SERVICE|supabase-cli|cache" >&2
	exit 2
	;;
esac
