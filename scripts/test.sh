#!/usr/bin/env bash
# The project's test command: the library's tests, then every notebook headless in quick mode.
#   bash scripts/test.sh            (from the repository root; DLKIT_DATA may point at the data)
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests run in crates/dlkit, notebooks in notebooks/: a relative DLKIT_DATA would break both.
if [ -n "${DLKIT_DATA:-}" ]; then
    DLKIT_DATA="$(cd "$DLKIT_DATA" && pwd)"
    export DLKIT_DATA
fi

phase() { printf '\n=== %s\n' "$*"; }
phase "set-up (Jupyter, evcxr kernel, Fashion-MNIST)"
bash scripts/setup.sh

start=$SECONDS
phase "cargo test --workspace"
cargo test --workspace
echo "cargo test: $((SECONDS - start)) s"

start=$SECONDS
phase "benchmarks, smoke mode (one repetition each)"
cargo run --quiet -p dlkit -- bench --smoke
echo "bench smoke: $((SECONDS - start)) s"

start=$SECONDS
phase "the cuda feature type-checks (nvcc from PyPI, no GPU needed)"
bash scripts/cuda_check.sh
echo "cuda check: $((SECONDS - start)) s"

start=$SECONDS
phase "notebooks (quick mode)"
python3 scripts/run_notebooks.py
echo "notebooks: $((SECONDS - start)) s"
