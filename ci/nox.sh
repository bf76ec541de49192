#!/usr/bin/env bash
# Run nox from a private venv (.venv-nox), so the README's commands work on a stock
# Debian/Ubuntu Python too: PEP 668 forbids pip into the system Python, and Debian ships
# python3 without ensurepip unless python3-venv is installed. Then a pip-less venv gets pip
# from PyPI's own wheel (pip runs from its wheel). Needs python3 >= 3.11 and PyPI.
#   bash ci/nox.sh -s tests            bash ci/nox.sh -s rehearsal
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GLM51_NOX_VENV:-.venv-nox}
NOX_SPEC=${GLM51_NOX_SPEC:-nox>=2025.2.9}  # dependency groups from pyproject.toml
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/nox" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        "$PY" -m venv --without-pip "$VENV"
    fi
    if [ ! -x "$VENV/bin/pip" ]; then
        wheel_dir=$(mktemp -d)
        trap 'rm -rf "$wheel_dir"' EXIT
        "$VENV/bin/python" - "$wheel_dir" <<'PY'
import json, sys, urllib.request
# The newest pip wheel, from PyPI's JSON API (honours the system CA bundle via ssl defaults).
info = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60))
url = next(f["url"] for f in info["urls"] if f["filename"].endswith(".whl"))
urllib.request.urlretrieve(url, f"{sys.argv[1]}/pip.whl")
PY
        "$VENV/bin/python" "$wheel_dir/pip.whl/pip" install -q "$wheel_dir/pip.whl"
    fi
    "$VENV/bin/pip" install -q "$NOX_SPEC"
fi
exec "$VENV/bin/nox" "$@"
