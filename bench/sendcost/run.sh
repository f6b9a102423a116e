#!/usr/bin/env bash
# run.sh — one send's database time before and after 20261201001200_api_send_path.sql, side by side.
#
#   DATABASE_URL=postgres://postgres@…/db SUPARELAY_TEST_TEMPLATE_DB=suparelay_base bench/sendcost/run.sh [runs] [sends] [bytes]
#
# Needs a superuser connection to a stack's PostgreSQL and its template database (Auth's and Storage's schemas,
# none of ours). It creates two private databases from the template — "before": every migration of
# supabase/migrations up to the one above; "after": all of them — so that nothing shared is locked or changed,
# runs bench/sendcost/sendcost.sql on each in turn (before, after, before, …) for 2- and 201-member rooms, prints
# the medians (and minima) of the mean time per send and the buffer pages one send touches, and drops both. On the
# "after" database it also times the original Node server's send path (its two writes, as sendcost.sql -v orig=1
# does them), which runs on that database until the cutover.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5} sends=${2:-100} bytes=${3:-300}
template=${SUPARELAY_TEST_TEMPLATE_DB:-suparelay_base}
change=20261201001200_api_send_path.sql
dbs=(sendcost_before_$$ sendcost_after_$$)
url_of() { sed -E "s#/[^/?]+(\?|$)#/$1\1#" <<<"$DATABASE_URL"; }
cleanup() { for d in "${dbs[@]}"; do psql "$DATABASE_URL" -qX -c "drop database if exists $d with (force)" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for d in "${dbs[@]}"; do
  psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 -c "create database $d template $template" >/dev/null
  for f in supabase/migrations/*.sql; do
    [[ $d == sendcost_before_* && $(basename "$f") > "$change" ]] && continue
    [[ $d == sendcost_before_* && $(basename "$f") == "$change" ]] && continue
    psql "$(url_of "$d")" -qX -1 -v ON_ERROR_STOP=1 -f "$f" >/dev/null 2>&1 || { echo "migration $f failed on $d" >&2; exit 1; }
  done
done
# The cutover migrations sort last; "before" gets them too, so that both are in the production configuration.
for f in supabase/migrations/*_cutover_*.sql; do
  psql "$(url_of "${dbs[0]}")" -qX -1 -v ON_ERROR_STOP=1 -f "$f" >/dev/null 2>&1
done
one() { # $1 members, $2 database, $3 extra psql flag → "mean-ms-per-send buffers-per-send original-mean-ms"
  local out
  out=$(psql "$(url_of "$2")" -q -X -v members="$1" -v sends="$sends" -v bytes="$bytes" -v plans=0 ${3:+"$3"} \
    -f bench/sendcost/sendcost.sql 2>&1)
  echo "$(sed -n 's/.* mean_ms_per_send=\([0-9.]*\).*/\1/p' <<<"$out") $(sed -n 's/.*shared_buffers_per_send=\([0-9]*\).*/\1/p' <<<"$out")" \
    "$(sed -n 's/.*original_mean_ms_per_send=\([0-9.]*\).*/\1/p' <<<"$out")"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for m in 2 201; do
  b=() a=() o=() bb='' ab=''
  for ((i = 0; i < runs; i++)); do
    read -r t bb _ < <(one "$m" "${dbs[0]}"); b+=("$t")
    read -r t ab u < <(one "$m" "${dbs[1]}" "-vorig=1"); a+=("$t"); o+=("$u")
  done
  mb=$(printf '%s\n' "${b[@]}" | median) ma=$(printf '%s\n' "${a[@]}" | median) mo=$(printf '%s\n' "${o[@]}" | median)
  nb=$(printf '%s\n' "${b[@]}" | sort -n | head -1) na=$(printf '%s\n' "${a[@]}" | sort -n | head -1)
  no=$(printf '%s\n' "${o[@]}" | sort -n | head -1)
  printf 'members=%-4s ms/send median (min): before %s (%s), after %s (%s), after/before %.2f; the original server'"'"'s path %s (%s), after/original %.2f | buffers/send: before %s, after %s\n' \
    "$m" "$mb" "$nb" "$ma" "$na" "$(awk -v x="$ma" -v y="$mb" 'BEGIN {print x / y}')" "$mo" "$no" \
    "$(awk -v x="$ma" -v y="$mo" 'BEGIN {print x / y}')" "$bb" "$ab"
  printf '  runs before:   %s\n  runs after:    %s\n  runs original: %s\n' "${b[*]}" "${a[*]}" "${o[*]}"
done
