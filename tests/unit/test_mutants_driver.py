"""The mutation-testing driver's pure parts (tests/support/mutants.py; docs/testing.md): the
mapping loads, every mapped test file exists, and [skip] fences whole functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import mutants

REPO = Path(__file__).resolve().parents[2]


def test_the_mapping_names_existing_modules_and_tests():
    mapping = mutants.load_mapping()
    assert "checkpoint/safetensors" in mapping and "checkpoint/verify/layout" in mapping
    for module, args in mapping.items():
        files = [a.split("::")[0] for a in args if a.startswith("tests/")]
        assert files, module
        if (REPO / "src" / "glm51" / f"{module}.py").is_file():
            assert all((REPO / f).is_file() for f in files), module
    for module, functions in mutants.load_skips().items():
        tree = ast.parse((REPO / "src" / "glm51" / f"{module}.py").read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert set(functions) <= names, module


def test_fence_wraps_a_decorated_function_in_mutmuts_markers():
    source = "import x\n\n\n@dec\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n"
    fenced = mutants.fence(source, ["a"])
    assert fenced == (
        "import x\n\n\n# pragma: no mutate start\n@dec\ndef a():\n    return 1\n\n\n"
        "# pragma: no mutate end\ndef b():\n    return 2\n"
    )
    ast.parse(fenced)


def test_fence_needs_a_statement_after_the_function():
    with pytest.raises(SystemExit, match=r"\[skip\] b: not a top-level function followed"):
        mutants.fence("def a():\n    pass\n\n\ndef b():\n    pass\n", ["b"])
    with pytest.raises(SystemExit):
        mutants.fence("x = 1\n", ["missing"])
