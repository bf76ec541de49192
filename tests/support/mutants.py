"""Mutation testing, one module at a time (`nox -s mutants [-- MODULE ...]`; docs/testing.md).

mutmut 3 reads one [tool.mutmut] from ./pyproject.toml and works in ./mutants/, so each
module runs in its own scratch copy of the checkout (out/mutants/<module>/) whose
pyproject.toml gets a [tool.mutmut] naming that module alone (only_mutate) and the test files
tests/mutants.toml maps it to (pytest_add_cli_args_test_selection). mutmut's first, clean run
records which of those tests reach each function, and each mutant then runs only those.

    python tests/support/mutants.py                      # every module in tests/mutants.toml
    python tests/support/mutants.py checkpoint/safetensors --show   # one, with survivor diffs

Prints killed / survived / timed out per module, writes out/mutants/report.json, and exits 1
when a module scores under --fail-under (killed + timed out over all its mutants, in %).
Not a test module: the default pytest run never imports it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "tests" / "mutants.toml"

# mutmut's exit codes per mutant (mutmut/stats.py, status_by_exit_code), folded to what we report.
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {36, -24, 24, 152, 255}
NO_TESTS = {5, 33}


@dataclass
class Result:
    module: str
    tests: list[str]
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    no_tests: int = 0
    other: int = 0  # not checked, suspicious, segfault, interrupted
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # functions left unmutated ([skip])
    error: str = ""
    survivors: list[str] = field(default_factory=list)
    unkilled: list[str] = field(default_factory=list)  # no tests / other, by name

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.timeout + self.no_tests + self.other

    @property
    def score(self) -> float:
        return 100.0 * (self.killed + self.timeout) / self.total if self.total else 0.0


def load_mapping() -> dict[str, list[str]]:
    return tomllib.loads(MAPPING.read_text("utf-8"))["modules"]


def load_skips() -> dict[str, list[str]]:
    """module -> top-level functions left unmutated ([skip] in tests/mutants.toml)."""
    return tomllib.loads(MAPPING.read_text("utf-8")).get("skip", {})


def fence(source: str, functions: list[str]) -> str:
    """`source` with each named top-level function between `# pragma: no mutate start` and
    `end` lines (mutmut's own markers), written into the scratch copy only."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = tree.body
    inserts: list[tuple[int, str]] = []
    for name in functions:
        found = [
            i
            for i, n in enumerate(body)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
        ]
        if not found or found[0] + 1 >= len(body):
            raise SystemExit(f"[skip] {name}: not a top-level function followed by another")
        node, after = body[found[0]], body[found[0] + 1]
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        inserts += [
            (first - 1, "# pragma: no mutate start\n"),
            (after.lineno - 1, "# pragma: no mutate end\n"),
        ]
    for index, text in sorted(inserts, reverse=True):
        lines.insert(index, text)
    return "".join(lines)


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [p for p in listed.split("\0") if p and (REPO / p).is_file()]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(module: str, tests: list[str], work: Path, skip: list[str] | None = None) -> None:
    """A scratch copy of the checkout whose pyproject.toml configures mutmut for `module`."""
    if work.exists():
        shutil.rmtree(work)
    files = _checkout_files()
    for rel in files:
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    if skip:
        source = work / "src" / "glm51" / f"{module}.py"
        source.write_text(fence(source.read_text("utf-8"), skip), "utf-8")
    top = sorted({rel.split("/", 1)[0] for rel in files} - {"src", "tests", "pyproject.toml"})
    config = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src"]',
            f'only_mutate = ["src/glm51/{module}.py"]',
            f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
            # the recipe, image locks, docs... that tests read beside the source
            f"also_copy = {_toml_list(top)}",
            "",
        ]
    )
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text("utf-8") + config, "utf-8")


def _mutmut() -> list[str]:
    beside = Path(sys.executable).with_name("mutmut")
    return [str(beside)] if beside.exists() else [shutil.which("mutmut") or "mutmut"]


def collect(module: str, tests: list[str], work: Path) -> Result:
    result = Result(module, tests)
    meta = work / "mutants" / "src" / "glm51" / f"{module}.py.meta"
    if not meta.exists():
        result.error = f"no results ({meta.relative_to(REPO)} missing)"
        return result
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    for name, code in sorted(codes.items()):
        if code in KILLED:
            result.killed += 1
        elif code in SURVIVED:
            result.survived += 1
            result.survivors.append(name)
        elif code in TIMEOUT:
            result.timeout += 1
        elif code in NO_TESTS:
            result.no_tests += 1
            result.unkilled.append(f"{name} (no tests)")
        else:
            result.other += 1
            result.unkilled.append(f"{name} (exit {code})")
    return result


def run_module(
    module: str, tests: list[str], out: Path, children: int, limit: float, skip: list[str]
) -> Result:
    work = out / module.replace("/", ".")
    prepare(module, tests, work, skip)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut sets sys.path
    log = (out / f"{module.replace('/', '.')}.log").open("w")
    start = time.monotonic()
    cmd = [*_mutmut(), "run", "--max-children", str(children)]
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    error = ""
    try:
        rc = proc.wait(timeout=limit)
        if rc != 0:
            error = f"mutmut exited {rc} (see {log.name})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        error = f"stopped after {limit:.0f}s (--limit); counts are partial"
    log.close()
    result = collect(module, tests, work)
    result.seconds = round(time.monotonic() - start, 1)
    result.error = result.error or error
    return result


def show(module: str, out: Path, names: list[str]) -> None:
    work = out / module.replace("/", ".")
    for name in names:
        diff = subprocess.run(
            [*_mutmut(), "show", name], cwd=work, capture_output=True, text=True, check=False
        )
        print(diff.stdout.rstrip() or diff.stderr.rstrip())


def table(results: list[Result]) -> str:
    rows = [
        "| module | tests | mutants | killed | survived | timed out | no tests | score |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        tests = ", ".join(t.removeprefix("tests/unit/") for t in r.tests if t.endswith(".py"))
        note = f" ({r.error})" if r.error else ""
        note += f" (not mutated: {', '.join(r.skipped)})" if r.skipped else ""
        rows.append(
            f"| {r.module}{note} | {tests} | {r.total} | {r.killed} | {r.survived} | {r.timeout} "
            f"| {r.no_tests + r.other} | {r.score:.1f}% |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under src/glm51/ without .py")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants")
    parser.add_argument("--limit", type=float, default=1200, help="seconds per module")
    parser.add_argument("--fail-under", type=float, default=90.0, help="score per module, %%")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "mutants")
    args = parser.parse_args(argv)

    mapping, skips = load_mapping(), load_skips()
    unknown = [m for m in args.modules if m not in mapping]
    if unknown:
        parser.error(f"not in {MAPPING.relative_to(REPO)}: {', '.join(unknown)}")
    modules = args.modules or list(mapping)
    args.out.mkdir(parents=True, exist_ok=True)

    results = []
    for module in modules:
        if not (REPO / "src" / "glm51" / f"{module}.py").is_file():
            print(f"{module}: no such module yet, skipped")
            continue
        print(f"{module}: mutating, tests {', '.join(mapping[module])} ...", flush=True)
        skip = skips.get(module, [])
        r = run_module(module, mapping[module], args.out, args.max_children, args.limit, skip)
        r.skipped = skip
        results.append(r)
        print(
            f"{module}: {r.killed} killed, {r.survived} survived, {r.timeout} timed out, "
            f"{r.no_tests + r.other} not covered, {r.score:.1f}% in {r.seconds}s {r.error}",
            flush=True,
        )
        for name in r.survivors + r.unkilled:
            print(f"    {name}")
        if args.show and r.survivors:
            show(module, args.out, r.survivors)

    report = args.out / "report.json"
    report.write_text(json.dumps([asdict(r) | {"score": r.score} for r in results], indent=2))
    print()
    print(table(results))
    print(f"\n(report: {report})")
    low = [r.module for r in results if r.score < args.fail_under or r.error]
    if low:
        print(f"under {args.fail_under:.0f}% or incomplete: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
