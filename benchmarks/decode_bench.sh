#!/usr/bin/env bash
# Decode speed grid for docs/BENCHMARKS.md: char-10m and the stories15M shape, fp32 and
# int8, 1 and 2 threads (median of --repeats timed runs each; the 1-minute load average
# is printed beside each line, since the machine may be shared).
# Usage: benchmarks/decode_bench.sh [extra slm bench generate flags, e.g. --reference]
set -euo pipefail
cd "$(dirname "$0")/.."
SLM=${SLM:-.build/release/slm}
for threads in ${THREADS:-2 1}; do
  for weights in fp32 int8; do
    for model in "--preset char-10m --vocab-size 96" "--config benchmarks/configs/stories15M.toml"; do
      # shellcheck disable=SC2086
      line=$($SLM bench generate $model --cache-only --repeats "${REPEATS:-5}" --threads "$threads" --weights "$weights" "$@")
      echo "$line [load $(cut -d' ' -f1 /proc/loadavg)]"
    done
  done
done
