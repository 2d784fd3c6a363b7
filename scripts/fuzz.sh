#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer (see Sources/SLMFuzzTargets).
#
#   scripts/fuzz.sh [--minutes M] [TARGET...]      default: 10 minutes for each target
#
# Builds slm-fuzz instrumented for coverage and AddressSanitizer into .build/fuzz, starts
# each target from fuzz/seeds/TARGET plus the corpus it grew before (.build/fuzz/corpus),
# and writes any input that crashes, leaks or runs past 10 s to fuzz/findings/TARGET/.
# Once a finding is fixed, move it to fuzz/regressions/TARGET/: `swift test` replays it.
# Prints one line per target (executions, coverage, corpus size) and exits 1 on findings.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

runtime=$(find "$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib" -name 'libclang_rt.fuzzer_no_main-x86_64.a' 2>/dev/null | head -1)
if [ -z "$runtime" ]; then
  echo "fuzz.sh: this Swift toolchain has no libFuzzer runtime (libclang_rt.fuzzer_no_main); use a swift.org toolchain for Linux" >&2
  exit 2
fi

echo "building slm-fuzz with libFuzzer and AddressSanitizer (.build/fuzz)…"
swift build -c release --product slm-fuzz --build-path .build/fuzz \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
  -Xswiftc -DSLM_LIBFUZZER -Xlinker "$runtime" -Xlinker -lstdc++ 2>&1 | grep -v "Cannot export local symbol" | tail -3
binary=.build/fuzz/release/slm-fuzz
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/seeds)
fi

export SWIFT_BACKTRACE=enable=no   # libFuzzer prints the stack; Swift's backtracer only slows each crash down
status=0
for target in "${targets[@]}"; do
  [ -d "fuzz/seeds/$target" ] || { echo "fuzz.sh: no seeds for $target (targets: $(ls fuzz/seeds | tr '\n' ' '))" >&2; exit 2; }
  corpus=".build/fuzz/corpus/$target" findings="fuzz/findings/$target/" log=".build/fuzz/$target.log"
  mkdir -p "$corpus" "$findings"
  # The largest seed bounds the inputs' length (tokenizer.json is the biggest at ~14 KB).
  max_len=$(( $(find "fuzz/seeds/$target" -type f -printf '%s\n' | sort -n | tail -1) * 2 + 256 ))
  started=$(date +%s)
  # -detect_leaks=0: Foundation's FileManager.contents(atPath:) leaks a 4 KiB buffer on
  # some paths (FoundationEssentials.readBytesFromFile), which would end every file-based
  # target within seconds; memory errors and crashes are what this hunts. The same goes
  # for LeakSanitizer's check at exit (ASAN_OPTIONS), which would report those buffers as
  # a crash on the last input.
  if ASAN_OPTIONS=detect_leaks=0 "$binary" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len="$max_len" -detect_leaks=0 \
       -print_final_stats=1 -artifact_prefix="$findings" "$corpus" "fuzz/seeds/$target" >"$log" 2>&1; then
    result="no findings"
  else
    result="FINDING: see $log and $findings"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "$target: $runs executions in $(( $(date +%s) - started )) s, coverage $cov edges, corpus $(ls "$corpus" | wc -l) inputs; $result"
  rmdir "$findings" 2>/dev/null || true
done
rm -rf /dev/shm/slm-fuzz-* 2>/dev/null || true
exit $status
