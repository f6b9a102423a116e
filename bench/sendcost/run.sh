#!/usr/bin/env bash
# run.sh — one send's database time before and after 20261201001200_api_send_path.sql, side by side.
#
#   DATABASE_URL=postgres://postgres@…/db bench/sendcost/run.sh [runs] [sends] [bytes]
#
# Needs a superuser connection to a database with every migration applied (the test stack's). "before" is the
# send path as the migrations up to 20261201001100 left it (api_send_message, the message_status trigger function
# and the three duplicate indexes recreated from those files inside the rolled-back transaction); "after" is the
# database as it is.
# Runs are interleaved (before, after, before, …) for 2- and 201-member rooms; the medians are printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5} sends=${2:-100} bytes=${3:-300}
mig=supabase/migrations
prelude=$(mktemp)
trap 'rm -f "$prelude"' EXIT
{
  echo 'drop function if exists public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean, uuid, timestamptz);'
  sed -n '/^drop function if exists public.api_send_message/,/^\$\$;/p' "$mig/20261201000900_api_rpcs.sql"
  echo 'grant execute on function public.api_send_message(uuid, jsonb, text, jsonb, uuid, text, boolean) to authenticated;'
  sed -n '/^create or replace function public.trigger_create_message_status/,/^\$\$;/p' "$mig/20261201000100_functions.sql"
  grep -E '^create index if not exists (idx_message_recipients_lookup|idx_message_recipients_message_id|deliveries_message_idx) ' \
    "$mig/20261201000000_baseline.sql"
} >"$prelude"
one() { # $1 members, $2 before|after → "mean-ms-per-send buffers-per-send"
  local extra=() out
  [[ $2 == before ]] && extra=(-v "prelude=$prelude")
  out=$(psql "$DATABASE_URL" -q -X -v members="$1" -v sends="$sends" -v bytes="$bytes" -v plans=0 "${extra[@]}" \
    -f bench/sendcost/sendcost.sql 2>&1)
  echo "$(sed -n 's/.*mean_ms_per_send=\([0-9.]*\).*/\1/p' <<<"$out") $(sed -n 's/.*shared_buffers_per_send=\([0-9]*\).*/\1/p' <<<"$out")"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for m in 2 201; do
  b=() a=() bb='' ab=''
  for ((i = 0; i < runs; i++)); do
    read -r t bb < <(one "$m" before); b+=("$t")
    read -r t ab < <(one "$m" after); a+=("$t")
  done
  mb=$(printf '%s\n' "${b[@]}" | median) ma=$(printf '%s\n' "${a[@]}" | median)
  nb=$(printf '%s\n' "${b[@]}" | sort -n | head -1) na=$(printf '%s\n' "${a[@]}" | sort -n | head -1)
  printf 'members=%-4s ms/send median (min): before %s (%s), after %s (%s), ratio %.2f | buffers/send: before %s, after %s\n' \
    "$m" "$mb" "$nb" "$ma" "$na" "$(awk -v x="$ma" -v y="$mb" 'BEGIN {print x / y}')" "$bb" "$ab"
  printf '  runs before: %s\n  runs after:  %s\n' "${b[*]}" "${a[*]}"
done
