#!/usr/bin/env bash
# Runs the test suite under the sanitizers:
#
#   scripts/sanitize.sh [address] [thread]      default: both
#
#   address  the whole suite with AddressSanitizer (out-of-bounds, use after free), in
#            .build/asan
#   thread   the server and scheduler tests with ThreadSanitizer (data races), in
#            .build/tsan
#
# Each is a separate debug build (about as long as a clean one the first time). Leak
# checking is off: Foundation keeps caches alive until exit. Exits 1 if any run fails.
set -uo pipefail
cd "$(dirname "$0")/.."

kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(address thread)
status=0
mkdir -p .build
for kind in "${kinds[@]}"; do
  log=".build/sanitize-$kind.log"
  case "$kind" in
    address)
      echo "== swift test --sanitize=address (whole suite; full log: $log)"
      ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --build-path .build/asan >"$log" 2>&1
      ;;
    thread)
      echo "== swift test --sanitize=thread (server and scheduler tests; full log: $log)"
      swift test --sanitize=thread --build-path .build/tsan --filter SLMServerTests >"$log" 2>&1
      ;;
    *) echo "sanitize.sh: unknown kind $kind (address, thread)" >&2; exit 2 ;;
  esac
  code=$?
  reports=$(grep -c "WARNING: ThreadSanitizer\|ERROR: AddressSanitizer" "$log" || true)
  grep -E "Test run with|Executed [0-9]+ tests|✘" "$log" | tail -n 8
  if [ "$code" -eq 0 ] && [ "$reports" -eq 0 ]; then
    echo "== $kind: passed, no sanitizer reports"
  else
    echo "== $kind: FAILED (exit $code, $reports sanitizer reports; see $log)"
    status=1
  fi
done
exit $status
