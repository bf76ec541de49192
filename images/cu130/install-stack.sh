#!/bin/sh
# Install one hash-locked stack into /opt/venv: install-stack.sh STACK SGLANG_BUILD
#   STACK=full -> images/cu130/<SGLANG_BUILD>-py3XX.lock (+ <SGLANG_BUILD>-vcs.txt if present)
#   STACK=slim -> images/cu130/slim-py3XX.lock (glm51's light dependencies only)
# The lock is complete (every dependency, pinned and hashed), so it is installed with --no-deps.
set -eu
stack=$1
build=$2
locks=/opt/glm51/locks
. /usr/local/lib/glm51/ca-env.sh
case "$stack" in
    full) name=$build ;;
    slim) name=slim ;;
    *) echo "glm51: STACK must be 'full' or 'slim', got '$stack'" >&2; exit 2 ;;
esac
py=$(python -c 'import sys; print("%d%d" % sys.version_info[:2])')
lock=$locks/$name-py$py.lock
if [ ! -f "$lock" ]; then
    echo "glm51: no lock $name-py$py.lock for this base's Python; known locks:" >&2
    ls "$locks" >&2
    exit 1
fi
if grep -q '^# glm51: UNRESOLVED' "$lock"; then
    echo "glm51: the '$name' lock is not resolved yet (it needs GitHub)." >&2
    echo "glm51: run 'nox -s update_pins' where github.com is reachable, commit, rebuild." >&2
    exit 1
fi
pip install --no-deps --require-hashes --only-binary=:all: -r "$lock"
if [ "$stack" = full ] && grep -q '^b12x==' "$lock"; then
    # b12x last: flashinfer-python ships an older b12x/__init__.py of its own, and whichever of
    # the two is installed last owns `import b12x`. Reinstall the same locked, hashed b12x wheel
    # so the file is b12x's by construction (check_files.py verifies it against the RECORDs).
    awk '/^b12x==/ {on = 1} on {print} on && !/\\$/ {exit}' "$lock" >/tmp/b12x-last.txt
    pip install --no-deps --require-hashes --only-binary=:all: --force-reinstall -r /tmp/b12x-last.txt
    rm -f /tmp/b12x-last.txt
fi
if [ -f "$locks/$name-vcs.txt" ]; then
    # A git requirement cannot be hashed; it is pinned by full commit sha instead.
    pip install --no-deps -r "$locks/$name-vcs.txt"
fi
basename "$lock" >/opt/glm51/lock-name
