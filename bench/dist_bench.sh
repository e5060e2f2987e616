#!/usr/bin/env bash
# dist_bench.sh — data-parallel training on this machine: 1 rank against 2
# ranks (mpirun, one thread each), at global batch 64 and 256, float32,
# for the Fashion MLP (samples/fashion_mlp.bp, SGD) and the CNN
# (samples/fashion_cnn.bp, Adam), in one run. Prints examples/s (the
# training loop of one epoch over the first N images, from rank 0's log),
# the speed-up, and each rate as a fraction of the FMA peak of the cores it
# ran on (bench/peak.c, f32; flops per example from `bpc --stats`).
# Usage: bench/dist_bench.sh [BPC [PEAK]]   (make bench-dist)
set -euo pipefail
BPC=${1:-build/bpc}
PEAK=${2:-build/peak}
D=/usr/share/datasets/fashion-mnist
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 # mpirun refuses root without them
DATA="--data image=$D/train-images-idx3-ubyte.gz --data label=$D/train-labels-idx1-ubyte.gz"
rate() { # RANKS MODEL BATCH EXAMPLES OPTIM...: examples/s of one epoch
  local ranks=$1 model=$2 batch=$3 n=$4
  shift 4
  rm -f "$T/log.csv"
  if [ "$ranks" -eq 1 ]; then
    "$BPC" train "$model" --float --threads 1 --batch "$batch" --epochs 1 --limit "$n" $DATA "$@" --quiet --log "$T/log.csv"
  else
    mpirun -np "$ranks" --bind-to core "$BPC" train "$model" --float --threads 1 --batch "$batch" --epochs 1 \
      --limit "$n" $DATA "$@" --quiet --log "$T/log.csv"
  fi
  awk -F, 'NR == 2 { printf "%.0f", $7 }' "$T/log.csv"
}
peak=$("$PEAK" --f32-gflops)
echo "one core's f32 FMA peak: $peak GFLOP/s"
printf "%-5s %-6s %9s %12s %12s %9s %14s\n" model batch examples "1 rank ex/s" "2 ranks ex/s" speed-up "of peak (1, 2)"
for spec in "mlp:samples/fashion_mlp.bp:60000:--optim sgd --lr 0.1" "cnn:samples/fashion_cnn.bp:3200:--optim adam --lr 0.001"; do
  IFS=: read -r name model n opts <<<"$spec"
  flops=$("$BPC" "$model" --stats -o "$T/m.c" | awk '/^forward:/ { f = $4 } /^backward:/ { b = $4 } END { printf "%d", f + b }')
  for batch in 64 256; do
    for round in 1 2; do # interleaved, twice: the machine's speed drifts
      one=$(rate 1 "$model" "$batch" "$n" $opts)
      two=$(rate 2 "$model" "$batch" "$n" $opts)
      printf "%-5s %-6s %9s %12s %12s %8.2fx %6.0f%% %5.0f%%\n" "$name" "$batch" "$n" "$one" "$two" "$(echo "$two / $one" | bc -l)" \
        "$(echo "100 * $one * $flops / ($peak * 1000000000)" | bc -l)" "$(echo "100 * $two * $flops / (2 * $peak * 1000000000)" | bc -l)"
    done
  done
done
