#!/usr/bin/env bash
# A notebook run as a student runs it: JupyterLab in headless Chromium, the Rust kernel chosen,
# Run All Cells from the Run menu, then checks on what the page shows (every code cell ran, no
# error or stderr output, at least the saved outputs' charts and tables rendered, a progress
# line redrawn in place shows as one line) and a full-page screenshot.
#
#   bash scripts/lab_check.sh notebooks/00_quickstart.ipynb     screenshot: runs/lab_check/00_quickstart.png
#   bash scripts/lab_check.sh --html submission/00_quickstart.html   an exported page, offline
#   bash scripts/lab_check.sh --self-test      the checker on two Python notebooks (about a minute)
#   bash scripts/lab_check.sh --install ...    first install what is missing (Chromium from apt,
#                                              playwright-core from npm into ~/.cache/dlkit/node)
#   bash scripts/lab_check.sh --install-only   only that
#   bash scripts/lab_check.sh --skip-if-missing ...   exit 0, saying why, when the browser,
#                                              playwright-core, JupyterLab or the kernel is missing
# Other options (--screenshot, --charts, --tables, --timeout, --full, ...): --help.
# Environment: CHROMIUM (default /usr/bin/chromium), DLKIT_NODE_DIR (default ~/.cache/dlkit/node),
# DLKIT_DATA (passed to the kernel as an absolute path). The notebook runs from a temporary copy
# with DLKIT_QUICK=1 and DLKIT_RUNS in the temporary folder, so it trains afresh and the
# repository's notebook and runs/ are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

skip_if_missing=0 install=0 install_only=0 html=0 selftest=0 args=()
for a in "$@"; do
    case "$a" in
        --skip-if-missing) skip_if_missing=1 ;;
        --install) install=1 ;;
        --install-only) install=1 install_only=1 ;;
        *) args+=("$a"); [ "$a" = --html ] && html=1; [ "$a" = --self-test ] && selftest=1 ;;
    esac
done

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
NODE_DIR="${DLKIT_NODE_DIR:-$HOME/.cache/dlkit/node}"
export CHROMIUM DLKIT_NODE_DIR="$NODE_DIR"

has_playwright() { [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] || [ -f scripts/node_modules/playwright-core/package.json ]; }

if [ "$install" = 1 ]; then
    if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null 2>&1; then
        t=$SECONDS
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
        echo "lab_check: installed Chromium in $((SECONDS - t)) s"
    fi
    if ! has_playwright && command -v npm >/dev/null 2>&1; then
        t=$SECONDS
        mkdir -p "$NODE_DIR"
        npm install --prefix "$NODE_DIR" --no-save --no-audit --no-fund --loglevel=error playwright-core
        echo "lab_check: installed playwright-core in $((SECONDS - t)) s"
    fi
fi

[ "$install_only" = 1 ] && exit 0

missing=""
[ -x "$CHROMIUM" ] || missing="$missing; no Chromium at $CHROMIUM (apt-get install -y chromium, or set CHROMIUM)"
if ! command -v node >/dev/null 2>&1; then
    missing="$missing; no node (apt-get install -y nodejs npm)"
elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
    missing="$missing; node $(node --version) is older than 18"
fi
has_playwright || missing="$missing; no playwright-core in $NODE_DIR or scripts/node_modules (npm install --prefix $NODE_DIR playwright-core)"
if [ "$html" = 0 ]; then
    python3 -c 'import jupyterlab' >/dev/null 2>&1 || missing="$missing; no JupyterLab (bash scripts/setup.sh)"
    if [ "$selftest" = 0 ] && ! jupyter kernelspec list 2>/dev/null | grep -q '^ *rust '; then
        missing="$missing; no Rust kernel (bash scripts/setup.sh installs evcxr_jupyter)"
    fi
fi
if [ -n "$missing" ]; then
    if [ "$skip_if_missing" = 1 ]; then
        echo "lab_check: SKIPPED (the browser check needs what is missing here)${missing}; bash scripts/lab_check.sh --install installs Chromium and playwright-core"
        exit 0
    fi
    echo "lab_check: cannot run${missing}; bash scripts/lab_check.sh --install installs Chromium and playwright-core" >&2
    exit 2
fi

if [ -n "${DLKIT_DATA:-}" ]; then DLKIT_DATA="$(cd "$DLKIT_DATA" && pwd)"; export DLKIT_DATA; fi
exec node scripts/lab_check.mjs "${args[@]}"
