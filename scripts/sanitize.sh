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
for kind in "${kinds[@]}"; do
  case "$kind" in
    address)
      echo "== swift test --sanitize=address (whole suite)"
      ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --build-path .build/asan 2>&1 | tail -n 25
      ;;
    thread)
      echo "== swift test --sanitize=thread (server and scheduler tests)"
      TSAN_OPTIONS=halt_on_error=1 swift test --sanitize=thread --build-path .build/tsan --filter SLMServerTests 2>&1 | tail -n 25
      ;;
    *) echo "sanitize.sh: unknown kind $kind (address, thread)" >&2; exit 2 ;;
  esac
  code=${PIPESTATUS[0]}
  [ "$code" -eq 0 ] && echo "== $kind: passed" || { echo "== $kind: FAILED (exit $code)"; status=1; }
done
exit $status
