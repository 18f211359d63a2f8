#!/usr/bin/env bash
# Set up (once) and run every notebook headless in quick mode, saving the outputs in place:
#   bash scripts/notebooks.sh          all notebooks, quick mode
#   bash scripts/notebooks.sh 02       one section, by number or name
#   bash scripts/notebooks.sh --full   the coursework configuration (a GPU job)
#   bash scripts/notebooks.sh --export write submission/ from the executed notebooks (no re-run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = --export ]; then shift; exec python3 scripts/export_submission.py "$@"; fi
if [ -n "${DLKIT_DATA:-}" ]; then DLKIT_DATA="$(cd "$DLKIT_DATA" && pwd)"; export DLKIT_DATA; fi
exec python3 scripts/run_notebooks.py "$@"
