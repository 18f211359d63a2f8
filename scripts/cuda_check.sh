#!/usr/bin/env bash
# Type-checks dlkit's optional features on a machine without a GPU or CUDA toolkit — `cuda`, and
# `candle-datasets` (in the same check, so candle is checked once):
#   bash scripts/cuda_check.sh
# nvcc and the CUDA headers come from PyPI wheels (installed into a private folder); candle's
# CUDA kernels are compiled to PTX for compute capability 9.0 (Hopper, the course's GPUs) and the
# Rust code is type-checked (candle's link-only static library of quantized-LLM kernels is left
# empty: see scripts/nvcc_typecheck.sh). Nothing is linked: candle links libcuda, cuBLAS,
# cuRAND and NVRTC, which only a CUDA machine has (README, "CUDA").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
timed() { local t=$SECONDS; "$@"; echo "--- $1 ${2:-} took $((SECONDS - t)) s"; }

# nvcc 13.0.x: cudarc 0.19 knows CUDA 13.0, and PTX from it loads on the lab's driver (580).
version=13.0.88
prefix="${DLKIT_CUDA_WHEELS:-$HOME/.cache/dlkit/cuda-wheels-$version}"
if [ ! -x "$prefix/nvidia/cu13/bin/nvcc" ] || [ ! -d "$prefix/nvidia_nvvm-$version.dist-info" ]; then
    timed python3 -m pip install -q --upgrade --disable-pip-version-check --root-user-action=ignore \
        --target "$prefix" "nvidia-cuda-nvcc==$version" "nvidia-cuda-runtime==$version" \
        "nvidia-cuda-crt==$version" "nvidia-nvvm==$version" "nvidia-cuda-cccl==13.0.85"
fi
cuda="$prefix/nvidia/cu13"
export PATH="$cuda/bin:$PATH" CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda"
export CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90
nvcc --version | tail -2
# candle-kernels' build script takes nvcc from $NVCC and the headers from beside it: a mirror of
# the toolkit whose bin/nvcc is scripts/nvcc_typecheck.sh (it skips the link-only library).
mirror="$PWD/target/cuda-check/nvcc-typecheck"
mkdir -p "$mirror/bin"
ln -sfn "$cuda/include" "$mirror/include"
ln -sfn "$cuda/lib" "$mirror/lib64"
cp scripts/nvcc_typecheck.sh "$mirror/bin/nvcc"
export NVCC="$mirror/bin/nvcc" DLKIT_REAL_NVCC="$cuda/bin/nvcc"
timed cargo check -p dlkit --features cuda,candle-datasets --all-targets --target-dir target/cuda-check
