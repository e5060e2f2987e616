#!/usr/bin/env bash
# run.sh — runs every cmocka program and the end-to-end script, shows their
# output, and ends with one line totalling the individual tests.
# Usage: tests/run.sh BPC_BINARY TEST_PROGRAM...
set -u
bpc=$1
shift
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() { # adds the PASSED/FAILED counts cmocka or e2e.sh printed
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p; s/^e2e: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p; s/^e2e: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p))
  failed=$((failed + f))
}
for t in "$@"; do
  "$t" >"$log" 2>&1
  rc=$?
  cat "$log"
  count
  if [ $rc -ne 0 ] && ! grep -q '^\[  FAILED  \]' "$log"; then
    echo "FAILED: $t exited with status $rc"
    failed=$((failed + 1))
  fi
done
bash "$(dirname "$0")/e2e.sh" "$bpc" >"$log" 2>&1
rc=$?
cat "$log"
count
[ $rc -ne 0 ] && ! grep -q ' failed$' "$log" && failed=$((failed + 1))
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
