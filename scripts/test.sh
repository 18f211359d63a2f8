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
phase "the optional features type-check: cuda (nvcc from PyPI, no GPU needed) and candle-datasets"
bash scripts/cuda_check.sh
echo "feature check: $((SECONDS - start)) s"

start=$SECONDS
phase "notebooks (quick mode)"
python3 scripts/run_notebooks.py
echo "notebooks: $((SECONDS - start)) s"

# Required where DLKIT_REQUIRE_BROWSER=1 (CI); elsewhere skipped, saying why, without a browser.
skip=--skip-if-missing
[ "${DLKIT_REQUIRE_BROWSER:-0}" = 1 ] && skip=
start=$SECONDS
phase "JupyterLab in a real browser: notebook 00 run through the UI, and the submission export offline"
bash scripts/lab_check.sh $skip --self-test
bash scripts/lab_check.sh $skip notebooks/00_quickstart.ipynb
python3 scripts/test_export.py
export_dir="$(mktemp -d)"
python3 scripts/export_submission.py --out "$export_dir/submission"
python3 scripts/test_export.py --check "$export_dir/submission"
bash scripts/lab_check.sh $skip --html "$export_dir/submission/00_quickstart.html"
rm -rf "$export_dir"
echo "browser check and export: $((SECONDS - start)) s"
