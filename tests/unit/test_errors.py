"""Each kind of error has its exit code and its words; a subclass keeps its parent's."""

from __future__ import annotations

from glm51.endpoint.client import ServerGone
from glm51.errors import (
    CommandFailed,
    GateFailed,
    Glm51Error,
    InfraError,
    InputError,
    PreflightError,
)


def test_each_kind_has_its_exit_code_and_words():
    kinds = (Glm51Error, InputError, PreflightError, GateFailed, InfraError)
    assert [(k.exit_code, k.kind) for k in kinds] == [
        (1, "error"),
        (3, "bad input"),
        (4, "preflight failed"),
        (5, "gate failed"),
        (6, "infrastructure failed"),
    ]


def test_a_subclass_keeps_its_kinds_code_unless_it_names_its_own():
    assert (CommandFailed.exit_code, CommandFailed.kind) == (6, "infrastructure failed")
    assert (ServerGone.exit_code, ServerGone.kind) == (6, "infrastructure failed")

    class Refused(InfraError, exit_code=3, kind="bad input"):
        pass

    assert (Refused.exit_code, Refused.kind) == (3, "bad input")
    assert InfraError.exit_code == 6  # the parent is untouched
