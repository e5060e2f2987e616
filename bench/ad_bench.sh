#!/usr/bin/env bash
# ad_bench.sh — every benchmark problem: hand-written C against bpc's
# emitted C (both gcc -O2) and bpc's JIT, in one run. (make bench)
# Usage: bench/ad_bench.sh [PROBLEM-PREFIX...] (all problems by default).
# Columns are microseconds per call; ratios last:
#   bpc/hand  emitted gradient over hand-written gradient (goal <= 1.2)
#   jit/hand  JIT gradient over hand-written gradient
#   bwd/fwd   bpc backward (with its forward) over bpc forward (goal <= 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BPC=$ROOT/build/bpc
DRIVER=$ROOT/build/ad_bench
W=$ROOT/build/bench
mkdir -p "$W"
/usr/bin/python3 "$ROOT/bench/gen_models.py" "$W" 10000
CFLAGS="-O2 -fPIC -shared"
printf "%-14s %10s %10s %10s %10s %10s %10s   %7s %7s %7s %7s\n" problem "hand f" "hand grad" "bpc f" "bpc grad" \
  "jit f" "jit grad" bpc/hand jit/hand bwd/fwd jit b/f
ONLY=("$@") # optional: run only the problems whose names start with these
wanted() {
  [ ${#ONLY[@]} -eq 0 ] && return 0
  for o in "${ONLY[@]}"; do [[ $1 == "$o"* ]] && return 0; done
  return 1
}
run() { # name model batch hand-defines -- bpc-defines...
  local name=$1 model=$2 batch=$3 hdefs=$4
  shift 4
  wanted "$name" || return 0
  local dflags=() args=()
  for d in "$@"; do dflags+=(-D "$d"); args+=(-D "$d"); done
  "$BPC" "$model" "${dflags[@]}" --prefix m -o "$W/$name.c"
  gcc $CFLAGS -o "$W/$name.bpc.so" "$W/$name.c" -lm
  gcc $CFLAGS $hdefs -o "$W/$name.hand.so" "$ROOT/bench/hand/$(basename "${model%.bp}").c" -lm
  "$DRIVER" "$name" "$W/$name.bpc.so" "$W/$name.hand.so" "$model" "$batch" "${args[@]}"
}
M=$ROOT/bench/models
run lse-1e3 "$M/lse.bp" 1 "-DN=1000" N=1000
run lse-1e5 "$M/lse.bp" 1 "-DN=100000" N=100000
run lse-1e6 "$M/lse.bp" 1 "-DN=1000000" N=1000000
run lsq-1e4x20 "$M/lsq.bp" 1 "-DN=10000 -DM=20" N=10000 M=20
run lsq-1e5x50 "$M/lsq.bp" 1 "-DN=100000 -DM=50" N=100000 M=50
run mlp-1 "$M/mlp.bp" 1 "-DBATCH=1"
run mlp-64 "$M/mlp.bp" 64 "-DBATCH=64"
run chain-10k "$W/chain.bp" 1 "-DNSTMT=10000"
run smallnet "$W/smallnet.bp" 1 ""
