#!/usr/bin/env bash
# cnn_bench.sh — bpc train against PyTorch (CPU, one thread, float32, Adam)
# on samples/fashion_cnn.bp (5x5 convolutions 1->16->32, padding 2, 2x2 max
# pooling, 1568-128-10) and on a narrower network of the same shape (1->4->8
# channels), at batch 64 and 8, in one run. Prints examples/s, the ratio,
# and bpc's rate as a fraction of one core's FMA peak (bench/peak.c), with
# the flops of one training example from `bpc --stats` (forward + backward).
# Usage: bench/cnn_bench.sh [BPC]   (make bench-cnn)
set -euo pipefail
BPC=${1:-build/bpc}
PEAK=${2:-build/peak}
D=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3 # Debian's Python, where python3-torch is installed
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
peak=$("$PEAK" --f32-gflops)
echo "one core's f32 FMA peak: $peak GFLOP/s"
printf "%-10s %-6s %8s %12s %14s %8s %8s\n" model batch examples "bpc ex/s" "PyTorch ex/s" ratio "of peak"
for net in 16:32 4:8; do
  c1=${net%%:*} c2=${net##*:}
  sed -e "s/K1\[16,/K1[$c1,/; s/c1\[16\]/c1[$c1]/; s/K2\[32, 16,/K2[$c2, $c1,/; s/c2\[32\]/c2[$c2]/; s/W1\[1568,/W1[$((c2 * 49)),/" \
    samples/fashion_cnn.bp >"$T/cnn.bp"
  flops=$("$BPC" "$T/cnn.bp" --stats -o "$T/cnn.c" | awk '/^forward:/ { f = $4 } /^backward:/ { b = $4 } END { printf "%d", f + b }')
  for spec in 64:6400 8:1600; do
    b=${spec%%:*} n=${spec##*:}
    "$BPC" train "$T/cnn.bp" --float --threads 1 --batch "$b" --optim adam --lr 0.001 --epochs 1 --limit "$n" \
      --data image=$D/train-images-idx3-ubyte.gz --data label=$D/train-labels-idx1-ubyte.gz \
      --quiet --log "$T/log.csv"
    ours=$(awk -F, 'NR == 2 { printf "%.0f", $7 }' "$T/log.csv")
    theirs=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/pytorch_cnn.py "$D" "$b" "$n" "$c1" "$c2")
    printf "%-10s %-6s %8s %12s %14s %7.2fx %7.0f%%\n" "$c1-$c2" "$b" "$n" "$ours" "$theirs" \
      "$(echo "$ours / $theirs" | bc -l)" "$(echo "100 * $ours * $flops / ($peak * 1000000000)" | bc -l)"
  done
done
