#!/usr/bin/env bash
# The audit CLI before and after, in ONE run, interleaved, best of ROUNDS: issue 11's rows for
# `verify`, `replay --at` and `rebuild`, and the live database's bytes per event.
#
#   bench/audit-cli.sh BEFORE_RELEASE_DIR AFTER_RELEASE_DIR
#   EVENTS=1000000 SIZE_EVENTS=100000 ROUNDS=2 WORK=/tmp/audit-cli bench/audit-cli.sh \
#       /tmp/before-target/release target/release
#
# Each release dir must hold `ledger-gen` and `ledger-replay`. The log is made by each side's own
# `ledger-gen` (same seed), so "after" reads the event rows it writes; "after" also reads the
# before's log (old rows must stay readable, at what cost). Output: one line per measurement,
# `RESULT side log phase wall_s user_s sys_s max_rss_kib`, and `SIZE side bytes/event ...`.
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2")
events=${EVENTS:-1000000}; size_events=${SIZE_EVENTS:-100000}; rounds=${ROUNDS:-2}
work=${WORK:-$(mktemp -d)}; mkdir -p "$work"

gen() { # DIR EVENTS DB
  [ -f "$3" ] || "$1/ledger-gen" --events "$2" --db "$3" >/dev/null
}
timed() { # SIDE LOG PHASE CMD...
  local side=$1 log=$2 phase=$3; shift 3
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    echo "FAILED $side $log $phase: $(tail -1 "$work/err")"; return 0; }
  echo "RESULT $side $log $phase $(cat "$work/time")"
}
size() { # SIDE DB EVENTS
  sqlite3 "$2" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  local bytes events_bytes
  bytes=$(stat -c %s "$2")
  events_bytes=$(sqlite3 "$2" "SELECT sum(pgsize) FROM dbstat WHERE name = 'events' OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index');" 2>/dev/null || echo "?")
  echo "SIZE $1 file_bytes=$bytes per_event=$((bytes / $3)) events_table_and_indexes=$events_bytes per_event_events=$(( ${events_bytes:-0} / $3 ))"
}

mkdir -p "$work/before-small" "$work/after-small" "$work/before" "$work/after"
gen "$before" "$size_events" "$work/before-small/ledger.db"
gen "$after" "$size_events" "$work/after-small/ledger.db"
size before "$work/before-small/ledger.db" "$size_events"
size after "$work/after-small/ledger.db" "$size_events"

gen "$before" "$events" "$work/before/ledger.db"
gen "$after" "$events" "$work/after/ledger.db"
runs=("before:$before:before" "after:$after:before" "after:$after:after")
for round in $(seq 1 "$rounds"); do
  echo "## round $round of $rounds"
  order=("${runs[@]}"); if (( round % 2 == 0 )); then order=($(printf '%s\n' "${runs[@]}" | tac)); fi
  for run in "${order[@]}"; do
    IFS=: read -r side dir log <<<"$run"
    db=$work/$log/ledger.db
    # A second after the database file was last written (ledger-gen checkpoints it on close):
    # at or after the last event, so `replay --at` folds the whole log, each event's time parsed.
    at=$(date -u -d "@$(( $(stat -c %Y "$db") + 1 ))" +%Y-%m-%dT%H:%M:%SZ)
    timed "$side" "$log-log" verify "$dir/ledger-replay" verify --db "$db"
    timed "$side" "$log-log" "replay --at" "$dir/ledger-replay" replay --at "$at" --db "$db"
    rm -rf "$work/copy"; mkdir -p "$work/copy"; cp "$db" "$work/copy/ledger.db"
    timed "$side" "$log-log" rebuild "$dir/ledger-replay" rebuild --db "$work/copy/ledger.db"
  done
done
