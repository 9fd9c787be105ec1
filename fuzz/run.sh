#!/usr/bin/env bash
# Fuzzes every target in fuzz/tests/parsers.rs for SECONDS each (default 60) with bolero's random
# engine on the stable toolchain: the corpus in fuzz/tests/__fuzz__/<target>/corpus first, then
# random inputs until the time is up. The debug profile keeps overflow checks and debug
# assertions on, so arithmetic overflow is a finding too. Prints one line per target with its
# iterations, and exits non-zero if any target failed; bolero then prints the failing input and
# the BOLERO_RANDOM_SEED that reproduces it (add the input to the target's corpus once fixed).
#
#   fuzz/run.sh 60                 # every target, 60 s each
#   fuzz/run.sh 300 jsonl_log_reader   # one target
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
all=(form_body_parser form_body_round_trip basic_header_parser basic_header_round_trip
     scope_parser_round_trip event_decoder_round_trip jsonl_log_reader jsonl_log_of_chained_events)
targets=("${@:-${all[@]}}")

cargo test -p token-ledger-fuzz --test parsers --no-run --quiet

failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
    if BOLERO_RANDOM_TEST_TIME_MS=$((seconds * 1000)) \
        cargo test -p token-ledger-fuzz --test parsers --quiet -- --exact "$target" --nocapture >"$log" 2>&1; then
        verdict=ok
    else
        verdict=FAILED
        failed=1
        cat "$log"
    fi
    stats=$(grep -o 'run time: [0-9].*' "$log" | head -1 || true)
    if [ -z "$stats" ] && [ "$verdict" = ok ]; then
        verdict="NO RUN"
        failed=1
        stats="no such target in fuzz/tests/parsers.rs"
    fi
    printf '%-30s %-6s %s\n' "$target" "$verdict" "$stats"
done
exit "$failed"
