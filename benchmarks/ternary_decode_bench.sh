#!/usr/bin/env bash
# Issue 13's ternary decode target on the stories15M shape: fp32, int8 and ternary (int8
# head) decoders, interleaved round by round so that a busy machine slows all alike.
# Each line is one `slm bench generate` (median of its own repeats); the load average is
# printed beside it. Usage: benchmarks/ternary_decode_bench.sh [rounds] (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${SLM:-.build/release/slm}
for round in $(seq "${1:-5}"); do
  for run in "stories15M.toml --weights fp32" "stories15M.toml --weights int8" "stories15M-ternary.toml --weights ternary"; do
    set -- $run
    line=$($SLM bench generate --config "benchmarks/configs/$1" --cache-only --repeats 3 --threads "${THREADS:-2}" "$2" "$3")
    echo "round $round: $line [load $(cut -d' ' -f1 /proc/loadavg)]"
  done
done
