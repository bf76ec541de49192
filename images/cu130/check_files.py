"""Build-time check of the installed files themselves; any failure fails `docker build`.

    python check_files.py OWNERS     (OWNERS: images/cu130/file-owners.txt)

Version checks read the package metadata and cannot see one wheel overwrite another's file:
flashinfer-python 0.7.2 ships its own, older `b12x/__init__.py`, and whichever of the two is
installed last owns `import b12x`. So this compares files with the RECORDs:
- every path that two distributions' RECORDs list with different hashes must be named in
  OWNERS with the distribution whose content must be on disk, and the file on disk must hash
  to that distribution's RECORD entry (an unlisted overlap fails: someone must decide it);
- the file `import b12x` loads must be b12x's own (its RECORD hash), wherever b12x is installed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import os
import sys
import sysconfig
from importlib import metadata

Claim = tuple[str, str, str]  # (distribution, version, "algo=digest")


def _name(dist: metadata.Distribution) -> str:
    return dist.metadata["Name"]


def file_hash(path: str, algo: str = "sha256") -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{algo}=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def owners() -> dict[str, list[Claim]]:
    """Every hashed file of every installed distribution, by absolute path, with its claims
    (RECORD read directly: importlib's per-file objects are slow on a 10 GB environment)."""
    claims: dict[str, list[Claim]] = {}
    seen: set[str] = set()
    for dist in metadata.distributions():
        info = getattr(dist, "_path", None)
        if info is None or str(info) in seen:  # the same dist-info reached twice
            continue
        seen.add(str(info))
        name, version = _name(dist), dist.version  # each reads METADATA: once per dist
        record = dist.read_text("RECORD") or ""
        root = os.path.dirname(str(info))
        for row in csv.reader(record.splitlines()):
            if len(row) < 2 or not row[1]:  # RECORD itself, files written at install time
                continue
            path = os.path.normpath(os.path.join(root, row[0]))
            claims.setdefault(path, []).append((name, version, row[1]))
    return claims


def read_owners(path: str) -> dict[str, str]:
    """OWNERS: `relative/path  distribution` per line (relative to site-packages), # comments."""
    decided = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if fields:
                decided[fields[0]] = fields[1]
    return decided


def conflicts(claims: dict[str, list[Claim]], decided: dict[str, str], site: str) -> list[str]:
    problems = []
    for path, who in sorted(claims.items()):
        if len({h for _, _, h in who}) < 2:
            continue
        names = " and ".join(f"{n} {v}" for n, v, _ in who)
        if os.path.exists(path):
            on_disk = file_hash(path, who[0][2].split("=", 1)[0])
            winners = [n for n, _, h in who if h == on_disk]
        else:
            winners = []
        rel = os.path.relpath(path, site)
        owner = decided.get(rel)
        where = f"{rel}: owned by {names} with different content"
        if owner is None:
            problems.append(
                f"{where} (the file on disk is {' and '.join(winners) or 'neither'}'s); "
                "name the distribution that must own it in the OWNERS file"
            )
        elif owner.lower() not in (w.lower() for w in winners):
            problems.append(
                f"{where}: {owner}'s must be on disk, but it is "
                f"{' and '.join(winners) or 'neither'}'s (install {owner} last)"
            )
    return problems


def module_problems(module: str, dist_name: str, claims: dict[str, list[Claim]]) -> list[str]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        return [f"import {module}: cannot find it ({exc})"]
    if spec is None or not spec.origin:
        return [f"import {module}: not found"]
    origin = os.path.normpath(spec.origin)
    mine = [h for n, _, h in claims.get(origin, []) if n.lower() == dist_name.lower()]
    if not mine:
        return [f"import {module} loads {origin}, which {dist_name}'s RECORD does not list"]
    on_disk = file_hash(origin, mine[0].split("=", 1)[0])
    if on_disk != mine[0]:
        others = [f"{n} {v}" for n, v, h in claims[origin] if h == on_disk] or ["no distribution"]
        return [
            f"import {module} loads {origin}, which is not {dist_name}'s own file "
            f"(its content is {', '.join(others)}'s)"
        ]
    return []


def main(owners_file: str) -> tuple[int, list[str]]:
    claims = owners()
    site = sysconfig.get_paths()["purelib"]
    problems = conflicts(claims, read_owners(owners_file), site)
    try:
        metadata.distribution("b12x")
    except metadata.PackageNotFoundError:
        pass  # the slim stack has no b12x
    else:
        problems += module_problems("b12x", "b12x", claims)
    return len(claims), problems


if __name__ == "__main__":
    count, found = main(sys.argv[1])
    for problem in found:
        print(f"check_files: {problem}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"check_files: {count} installed files; every file owned twice is its decided owner's")
