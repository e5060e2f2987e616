#!/usr/bin/env bash
# run.sh — runs every cmocka program, the end-to-end script and the
# differential test's fixed seed set, shows their output, and ends with one
# line totalling the individual tests.
# Usage: tests/run.sh BPC_BINARY TEST_PROGRAM...
set -u
bpc=$1
shift
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() { # adds the PASSED/FAILED counts cmocka, e2e.sh or difftest.py printed
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p; s/^\(e2e\|difftest\): \([0-9]*\) passed, [0-9]* failed$/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p; s/^\(e2e\|difftest\): [0-9]* passed, \([0-9]*\) failed$/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
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
# the differential test's fixed seed set (tests/difftest/README.md), with the
# driver built beside the bpc under test
/usr/bin/python3 "$(dirname "$0")/difftest/difftest.py" --fast --bpc "$bpc" \
  --driver "$(dirname "$bpc")/difftest/driver" --out "$(dirname "$bpc")/difftest" >"$log" 2>&1
rc=$?
cat "$log"
count
[ $rc -ne 0 ] && ! grep -q '^difftest: [0-9]* passed, [0-9]* failed$' "$log" && failed=$((failed + 1))
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
