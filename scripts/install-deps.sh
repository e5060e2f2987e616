#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages bpc needs that are missing.
#   scripts/install-deps.sh          build and test dependencies (PyTorch, NumPy and mpmath
#                                    for the differential test, tests/difftest/)
#   scripts/install-deps.sh --demo   also the Fashion-MNIST data set (make demo)
#   scripts/install-deps.sh --bench  also PyTorch, and OpenBLAS and BLIS for bench/blas_bench.c (make bench)
set -euo pipefail
packages="build-essential flex bison libcmocka-dev libtcc-dev tcc zlib1g-dev clang graphviz python3-torch python3-numpy python3-mpmath openmpi-bin libopenmpi-dev"
for arg in "$@"; do
  case "$arg" in
    --demo) packages="$packages dataset-fashion-mnist" ;;
    --bench) packages="$packages dataset-fashion-mnist python3-torch python3-numpy valgrind libopenblas-dev libblis-dev" ;;
    --sanitize) packages="$packages libclang-rt-14-dev valgrind" ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
missing=""
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends $missing
