#!/usr/bin/env bash
# train_bench.sh — bpc train against PyTorch (CPU, one thread) on the
# 784-128-10 MLP of samples/fashion_mlp.bp: same model, SGD, batch sizes 64,
# 8 and 1, float32, in one run. Prints examples/s and the ratio.
# Usage: bench/train_bench.sh [BPC]   (make bench-train)
set -euo pipefail
BPC=${1:-build/bpc}
D=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3 # Debian's Python, where python3-torch is installed
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
printf "%-6s %8s %14s %14s %8s\n" batch examples "bpc ex/s" "PyTorch ex/s" ratio
for spec in 64:60000 8:20000 1:10000; do
  b=${spec%%:*} n=${spec##*:}
  "$BPC" train samples/fashion_mlp.bp --float --threads 1 --batch "$b" --lr 0.01 --epochs 1 --limit "$n" \
    --data image=$D/train-images-idx3-ubyte.gz --data label=$D/train-labels-idx1-ubyte.gz \
    --quiet --log "$T/log.csv"
  ours=$(awk -F, 'NR == 2 { printf "%.0f", $7 }' "$T/log.csv")
  theirs=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/pytorch_mlp.py "$D" "$b" "$n")
  printf "%-6s %8s %14s %14s %7.1fx\n" "$b" "$n" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)"
done
