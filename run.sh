#!/usr/bin/env bash
# cryoprior's two commands on a fresh Debian machine (nothing needed but Python 3.11+ and apt):
#   ./run.sh demo   install everything (RELION 3.1.3 from Debian, a virtual environment with
#                   torch 2.13.0 and cryoprior) and run the main job
#   ./run.sh test   install the same, then lint (ruff, mypy, the import layers) and run the
#                   test suite
# Also: ./run.sh setup (install only), ./run.sh lint. Idempotent: reruns only do what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
BIN="$VENV/bin"
STAMP="$VENV/.cryoprior-installed"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

setup() {
    local need=()
    if ! command -v relion_refine_mpi >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
        need+=(relion)
    fi
    if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
        need+=(python3-venv)
    fi
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing with apt-get: ${need[*]}"
        $SUDO apt-get update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
    fi
    # optional: a headless Chromium for the test that looks at the report in a real browser
    # (the test is skipped without it, so a machine whose apt lacks it still installs)
    if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
            chromium-headless-shell || echo "note: chromium-headless-shell not installed; the browser test will be skipped"
    fi
    if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
        "$PYTHON" -m venv "$VENV"
        "$BIN/python" -m pip install --upgrade pip
        # torch first and pinned, so that nothing pulls a newer torch with CUDA
        "$BIN/python" -m pip install torch==2.13.0
        "$BIN/python" -m pip install -e '.[dev]'
        touch "$STAMP"
    fi
}

lint() {
    "$BIN/ruff" check src tests benchmarks
    "$BIN/ruff" format --check src tests benchmarks
    "$BIN/mypy"             # type check of src/ ([tool.mypy] in pyproject.toml)
    "$BIN/lint-imports"     # the import layers of docs/architecture.md ([tool.importlinter])
}

case "${1:-}" in
    setup) setup ;;
    demo) setup; shift; "$BIN/cryoprior" demo "$@" ;;
    test) setup; lint; shift; "$BIN/python" -m pytest "$@" ;;
    lint) lint ;;
    *) echo "usage: $0 demo|test|setup|lint" >&2; exit 2 ;;
esac
