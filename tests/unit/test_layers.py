"""The one-way architecture: import-linter's contracts hold, a planted upward import breaks
them, glm51 modules import each other at module level only, and `glm51 --help` stays light."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "glm51"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_layer_contracts_hold():
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(SRC, tmp_path / "src" / "glm51")
    shutil.copyfile(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "src" / "glm51" / "preflight" / "__init__.py"
    planted.write_text(planted.read_text() + "\nimport glm51.serve  # noqa: E402\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "layers point down BROKEN" in done.stdout
    assert "glm51.preflight is not allowed to import glm51.serve" in done.stdout


def _function_level_glm51_imports(path: Path) -> list[str]:
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [
                f"{path.relative_to(SRC)}:{node.lineno} {n}" for n in names if n.startswith("glm51")
            ]
    return found


def test_glm51_modules_import_each_other_at_module_level_only():
    # A command module (cli.py) may defer a stage that pulls torch; nothing else may hide one.
    modules = [p for p in SRC.rglob("*.py") if p.name != "cli.py"]
    assert len(modules) > 40
    assert [hit for p in modules for hit in _function_level_glm51_imports(p)] == []


def test_the_check_sees_a_function_level_import(tmp_path, monkeypatch):
    planted = tmp_path / "glm51" / "sample.py"
    planted.parent.mkdir()
    planted.write_text("import glm51.proc\n\n\ndef f():\n    from glm51 import errors\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "glm51")
    assert _function_level_glm51_imports(planted) == ["sample.py:5 glm51"]


def test_help_does_not_import_torch_or_the_heavy_libraries():
    # What keeps `glm51 --help` fast (benchmarks/cli_startup.py times it): the stages' CLI
    # modules import their libraries, the recipe schema and the records when a command runs.
    code = (
        "import sys\n"
        "sys.argv = ['glm51', '--help']\n"
        "from glm51.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'modelopt', 'datasets', 'matplotlib', 'numpy',\n"
        "         'huggingface_hub', 'httpx', 'pydantic', 'glm51.recipe.schema', 'glm51.records')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_no_test_module_imports_another_test_folders_module():
    """Helpers live in tests/support (and fixtures in conftest.py files); a test module never
    imports another test module, a conftest, or a module of tests/unit or tests/integration."""

    tests = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if (
                    parts[0] == "tests"
                    and len(parts) > 2
                    and parts[1] in ("unit", "integration", "gpu")
                ):
                    found.append(f"{path.relative_to(tests)}: {name}")
    assert found == []
