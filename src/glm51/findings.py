"""One finding type for every check that reports what is wrong: preflight's (the machine,
the checkpoint, the flags) and verify's (a checkpoint's structure, layout and contents)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # serve would fail or silently misbehave; verify fails
    WARNING = "warning"  # worth knowing, the command goes on
    OK = "ok"


@dataclass(frozen=True)
class Finding:
    check: str  # a stable id: "checkpoint.shard-missing", "nvfp4-shape", ...
    severity: Severity
    message: str  # what is wrong and what was expected, naming the file / key / GPU
    fix: str = ""  # how to fix it, where one line says it
    where: str = (
        ""  # the file, tensor or module it is about, when the message does not lead with it
    )

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix else ""
        return f"[{self.severity.value}] {self.check}: {self}{fix}"
