#!/usr/bin/env bash
# cnn_bench.sh — bpc train against PyTorch (CPU, Adam, float32 unless said)
# on samples/fashion_cnn.bp (5x5 convolutions 1->16->32, padding 2, 2x2 max
# pooling, 1568-128-10) and on a narrower network of the same shape (1->4->8
# channels), at batch 64 and 8, in one run; the sample also on two threads
# and in float64 at batch 64. Prints examples/s, the ratio, and bpc's rate
# as a fraction of the FMA peak (bench/peak.c: one core's, two cores' for
# two threads, f32 or f64 as the row), with the flops of one training
# example from `bpc --stats` (forward + backward). Every figure is the best
# of three runs; the last line is the goals' ratios (bench/RESULTS.md,
# issue 16): two threads against one, f64's time against f32's.
# Usage: bench/cnn_bench.sh [BPC [PEAK]]   (make bench-cnn)
set -euo pipefail
BPC=${1:-build/bpc}
PEAK=${2:-build/peak}
D=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3 # Debian's Python, where python3-torch is installed
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
declare -A rate # examples/s by net:batch:threads:type
peaks=$("$PEAK" --gflops)
peak32=${peaks% *} peak64=${peaks#* }
echo "one core's FMA peak: f32 $peak32 GFLOP/s, f64 $peak64 GFLOP/s"
printf "%-10s %-6s %-8s %-5s %8s %12s %14s %8s %8s\n" model batch threads type examples "bpc ex/s" "PyTorch ex/s" ratio "of peak"
for net in 16:32 4:8; do
  c1=${net%%:*} c2=${net##*:}
  sed -e "s/K1\[16,/K1[$c1,/; s/c1\[16\]/c1[$c1]/; s/K2\[32, 16,/K2[$c2, $c1,/; s/c2\[32\]/c2[$c2]/; s/W1\[1568,/W1[$((c2 * 49)),/" \
    samples/fashion_cnn.bp >"$T/cnn.bp"
  flops=$("$BPC" "$T/cnn.bp" --stats -o "$T/cnn.c" | awk '/^forward:/ { f = $4 } /^backward:/ { b = $4 } END { printf "%d", f + b }')
  specs="64:1:f32:6400 8:1:f32:1600"
  if [ "$net" = 16:32 ]; then specs="$specs 64:2:f32:6400 64:1:f64:6400"; fi
  for spec in $specs; do
    IFS=: read -r b th ty n <<<"$spec"
    prec=--float peak=$peak32
    if [ "$ty" = f64 ]; then prec= peak=$peak64; fi
    ours=0 theirs=0
    for run in 1 2 3; do # the best of three runs each (this VM's neighbours only ever slow a run down)
      "$BPC" train "$T/cnn.bp" $prec --threads "$th" --batch "$b" --optim adam --lr 0.001 --epochs 1 --limit "$n" \
        --data image=$D/train-images-idx3-ubyte.gz --data label=$D/train-labels-idx1-ubyte.gz \
        --quiet --log "$T/log.csv"
      ours=$(awk -F, -v best="$ours" 'NR == 2 { printf "%.0f", ($7 > best ? $7 : best) }' "$T/log.csv")
      theirs=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/pytorch_cnn.py "$D" "$b" "$n" "$c1" "$c2" "$th" "$ty" |
        awk -v best="$theirs" '{ printf "%.0f", ($1 > best ? $1 : best) }')
    done
    printf "%-10s %-6s %-8s %-5s %8s %12s %14s %7.2fx %7.0f%%\n" "$c1-$c2" "$b" "$th" "$ty" "$n" "$ours" "$theirs" \
      "$(echo "$ours / $theirs" | bc -l)" "$(echo "100 * $ours * $flops / ($th * $peak * 1000000000)" | bc -l)"
    rate[$net:$b:$th:$ty]=$ours
  done
done
printf "16-32, batch 64: two threads %.2fx one thread; f64 takes %.2fx f32's time\n" \
  "$(echo "${rate[16:32:64:2:f32]} / ${rate[16:32:64:1:f32]}" | bc -l)" \
  "$(echo "${rate[16:32:64:1:f32]} / ${rate[16:32:64:1:f64]}" | bc -l)"
