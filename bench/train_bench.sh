#!/usr/bin/env bash
# train_bench.sh — bpc train against PyTorch (CPU) on the 784-128-10 MLP of
# samples/fashion_mlp.bp: same model, SGD, in one run. float32 on one thread
# at batch 64, 8 and 1; two threads and float64 at batch 64. Prints
# examples/s, the ratio, and bpc's rate as a fraction of one core's FMA peak
# (bench/peak.c, the f32 or f64 peak as the row's precision; two threads
# against two cores' peak), with the flops of one training example from
# `bpc --stats` (forward + backward). The optimiser's step is outside the
# count (it is per batch, not per example), and inside the time. Every
# figure is the best of three runs; the last lines are the goals' ratios
# (bench/RESULTS.md, issue 16): two threads against one, f64's time
# against f32's.
# Usage: bench/train_bench.sh [BPC [PEAK]]   (make bench-train)
set -euo pipefail
BPC=${1:-build/bpc}
PEAK=${2:-build/peak}
D=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3 # Debian's Python, where python3-torch is installed
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
declare -A rate # examples/s by batch:threads:type
peaks=$("$PEAK" --gflops)
peak32=${peaks% *} peak64=${peaks#* }
echo "one core's FMA peak: f32 $peak32 GFLOP/s, f64 $peak64 GFLOP/s"
flops=$("$BPC" samples/fashion_mlp.bp --stats -o "$T/m.c" | awk '/^forward:/ { f = $4 } /^backward:/ { b = $4 } END { printf "%d", f + b }')
echo "flops of one training example: $flops"
printf "%-6s %-8s %-5s %8s %12s %14s %8s %8s\n" batch threads type examples "bpc ex/s" "PyTorch ex/s" ratio "of peak"
for spec in 64:1:f32:60000 8:1:f32:20000 1:1:f32:10000 64:2:f32:60000 64:1:f64:60000; do
  IFS=: read -r b th ty n <<<"$spec"
  prec=--float peak=$peak32
  if [ "$ty" = f64 ]; then prec= peak=$peak64; fi
  ours=0 theirs=0
  for run in 1 2 3; do # the best of three runs each (this VM's neighbours only ever slow a run down)
    "$BPC" train samples/fashion_mlp.bp $prec --threads "$th" --batch "$b" --lr 0.01 --epochs 1 --limit "$n" \
      --data image=$D/train-images-idx3-ubyte.gz --data label=$D/train-labels-idx1-ubyte.gz \
      --quiet --log "$T/log.csv"
    ours=$(awk -F, -v best="$ours" 'NR == 2 { printf "%.0f", ($7 > best ? $7 : best) }' "$T/log.csv")
    theirs=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/pytorch_mlp.py "$D" "$b" "$n" "$th" "$ty" |
      awk -v best="$theirs" '{ printf "%.0f", ($1 > best ? $1 : best) }')
  done
  printf "%-6s %-8s %-5s %8s %12s %14s %7.2fx %7.0f%%\n" "$b" "$th" "$ty" "$n" "$ours" "$theirs" \
    "$(echo "$ours / $theirs" | bc -l)" "$(echo "100 * $ours * $flops / ($th * $peak * 1000000000)" | bc -l)"
  rate[$b:$th:$ty]=$ours
done
printf "batch 64: two threads %.2fx one thread; f64 takes %.2fx f32's time\n" \
  "$(echo "${rate[64:2:f32]} / ${rate[64:1:f32]}" | bc -l)" "$(echo "${rate[64:1:f32]} / ${rate[64:1:f64]}" | bc -l)"
