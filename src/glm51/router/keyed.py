"""`python -m glm51.router.keyed [--api-key-file FILE] SMG_ARGS...`: smg with the API key
read from a file (a mounted Kubernetes Secret) or else from stdin (a pipe from `glm51 router`).

smg 1.13.0 reads --api-key from argv only (no environment variable, no file), and argv is
visible to every user of the machine (ps, /proc). This process reads the key, appends
`--api-key` to the arguments in memory and runs smg's own entry point (`smg.cli.main`) in
this process, so the key never reaches an argv.
"""

from __future__ import annotations

import sys


def main(args: list[str]) -> None:
    if args[:1] == ["--api-key-file"] and len(args) > 1:
        with open(args[1], encoding="utf-8") as f:
            key = f.read().strip()
        args = args[2:]
    else:
        key = sys.stdin.readline().strip()
        sys.stdin.close()
    from smg.cli import main as smg_main

    smg_main(["launch", *args, *(["--api-key", key] if key else [])])


if __name__ == "__main__":
    main(sys.argv[1:])
