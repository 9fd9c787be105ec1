#!/usr/bin/env bash
# Introspection under wrk (one C process, one thread, 64 connections), bare axum and each given
# server binary interleaved, best of ROUNDS: the second load generator of issue 11's table.
#
#   bench/wrk/introspect.sh LEDGER_BENCH_BIN SERVER_BIN [SERVER_BIN...]
#   ROUNDS=3 SECONDS_EACH=10 TOKENS=200 bench/wrk/introspect.sh target/release/ledger-bench \
#       /tmp/before-target/release/token-ledger target/release/token-ledger
#
# Each server gets a fresh data folder, TOKENS client_credentials tokens (one per scope, so each
# is a distinct token) fetched with curl, and wrk cycles through them as the super admin.
# Loopback only; every process is killed on exit.
set -euo pipefail
bench=$(realpath "$1"); shift
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done; set -- "${bins[@]}"
rounds=${ROUNDS:-3}; secs=${SECONDS_EACH:-10}; ntokens=${TOKENS:-200}; conns=${CONNECTIONS:-64}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); pids=(); : >"$work/tokens"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Starts "$@" in the background, its stdout in file $1; sets URL once it prints `listening on`.
start() {
  local out=$1 line; shift
  "$@" >"$out" 2>"$out.err" & pids+=($!)
  for _ in $(seq 1 600); do
    if line=$(grep -o 'listening on http://[0-9.:]*' "$out" | head -1); then URL=${line#listening on }; return; fi
    sleep 0.05
  done
  echo "no 'listening on' from $*" >&2; cat "$out.err" >&2; exit 1
}
start_wait() { # FILE: waits for `listening on` in FILE, sets URL
  local line
  for _ in $(seq 1 600); do
    if line=$(grep -o 'listening on http://[0-9.:]*' "$1" | head -1); then URL=${line#listening on }; return; fi
    sleep 0.05
  done
  echo "no 'listening on' in $1" >&2; cat "$1.err" >&2; exit 1
}
stop_last() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

run_wrk() { # URL LABEL
  local line
  line=$(TOKENS_FILE=$work/tokens wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/introspect.lua" "$1/oauth2/introspect" | grep WRK_RESULT)
  echo "$2 $line"
}

serve_one() { # BIN INDEX: sets URL; leaves the tokens in $work/tokens
  local bin=$1 dir=$work/server-$2
  rm -rf "$dir"; mkdir -p "$dir"
  cat >"$dir/deployment.toml" <<TOML
[server]
bind_address = "127.0.0.1"
port = 0
[transport.https]
enabled = false
[database]
path = "data/ledger.db"
TOML
  local creds id secret
  creds=$(cd "$dir" && RUST_LOG=warn "$bin" client register --name wrk --config deployment.toml)
  id=$(sed -n 's/.*"client_id": *"\([^"]*\)".*/\1/p' <<<"$creds" | head -1)
  secret=$(sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p' <<<"$creds" | head -1)
  if [ -z "$id" ]; then id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$creds"); secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$creds"); fi
  (cd "$dir" && exec env RUST_LOG=warn "$bin" serve --config deployment.toml) >"$dir/out" 2>"$dir/out.err" & pids+=($!)
  start_wait "$dir/out"; local url=$URL
  : >"$work/tokens"
  for i in $(seq 1 "$ntokens"); do
    curl -sf -u "$id:$secret" -d "grant_type=client_credentials&scope=s$i" "$url/oauth2/token" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >>"$work/tokens"
  done
  # The answer must be active before anything is measured.
  curl -sf -u admin:admin -d "token=$(head -1 "$work/tokens")" "$url/oauth2/introspect" | grep -q '"active":true' \
    || { echo "introspection of a fresh token is not active on $bin" >&2; exit 1; }
}

for round in $(seq 1 "$rounds"); do
  echo "## round $round of $rounds"
  start "$work/bare.out" "$bench" bare-axum; run_wrk "$URL" "bare-axum"; stop_last
  n=0; order=("$@"); if (( round % 2 == 0 )); then order=($(printf '%s\n' "$@" | tac)); fi
  for bin in "${order[@]}"; do
    n=$((n + 1)); serve_one "$bin" "$n"; run_wrk "$URL" "$bin"; stop_last
  done
done
