"""Build-time checks of the installed stack; any failure fails `docker build`.

    python check_stack.py STACK LOCK

Both stacks: the installed distributions are exactly the lock's (same names, same versions).
Full stack: torch is the CUDA 13.0 build, no *-cu12 wheel is installed, the CuTe DSL compiler
library imports, and sglang/b12x import at the locked versions.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata

# Tools the venv itself brings, not part of the lock.
VENV_TOOLS = {"pip", "setuptools", "wheel"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: str) -> dict[str, str]:
    pins = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            pins[norm(m.group(1))] = m.group(2)
    return pins


def installed() -> dict[str, str]:
    return {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}


def main(stack: str, lock: str) -> list[str]:
    problems: list[str] = []
    pins, have = locked(lock), installed()
    for name, version in sorted(pins.items()):
        if have.get(name) != version:
            problems.append(f"{name}: locked {version}, installed {have.get(name)}")
    extra = sorted(set(have) - set(pins) - VENV_TOOLS - {"glm51", "sglang"})
    if extra:
        problems.append(f"installed but not in the lock: {extra}")
    if stack == "slim":
        return problems

    cu12 = sorted(n for n in have if n.endswith("-cu12") or "-cu12-" in n)
    if cu12:
        problems.append(f"CUDA 12 wheels installed: {cu12}")
    import torch

    if not str(torch.version.cuda).startswith("13.0"):
        problems.append(
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, not 13.0"
        )
    try:
        importlib.import_module("cutlass._mlir._mlir_libs._cutlass_ir")
    except Exception as exc:  # the CuTe DSL compiler must load, or b12x cannot JIT its kernels
        problems.append(f"CuTe DSL compiler library does not import: {exc!r}")
    for dist in ("sglang", "b12x"):
        importlib.import_module(dist)
        if dist in pins and have.get(dist) != pins[dist]:
            problems.append(f"{dist} {have.get(dist)} is not the locked {pins[dist]}")
    print(
        f"stack ok: torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"sglang {have.get('sglang')}, b12x {have.get('b12x')}"
    )
    return problems


if __name__ == "__main__":
    found = main(sys.argv[1], sys.argv[2])
    for problem in found:
        print(f"check_stack: {problem}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"check_stack: {sys.argv[1]} stack matches {sys.argv[2]}")
