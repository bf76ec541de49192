"""What `glm51 verify` found: the report every check family adds its findings to."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glm51 import __version__
from glm51.findings import Finding, Severity

# verify's findings are the same type as preflight's: all errors, each naming where.
Problem = Finding


@dataclass(frozen=True)
class DeepResult:
    module: str
    rel_error: float  # ||dequant - source|| / ||source||
    max_abs_error: float
    passed: bool


@dataclass
class Report:
    folder: Path
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shards: int = 0
    tensors: int = 0
    nvfp4_modules: int = 0
    bf16_modules: int = 0
    hashed_bytes: int = 0
    hash_seconds: float = 0.0
    manifest: str = "absent"  # absent, matched, written, mismatched, not-checked
    deep: list[DeepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, where: str, message: str) -> None:
        self.problems.append(Finding(check, Severity.ERROR, message, where=where))

    def to_json(self) -> str:
        data = asdict(self)
        data["folder"] = str(self.folder)
        data["ok"] = self.ok
        data["written_by"] = "glm51 verify"  # a record glm51 may replace on a re-run
        data["glm51_version"] = __version__
        # The report's schema is unchanged: a problem is its check, where and message.
        data["problems"] = [
            {"check": p.check, "where": p.where, "message": p.message} for p in self.problems
        ]
        for d in data["deep"]:  # strict JSON: a non-finite error becomes null
            for key in ("rel_error", "max_abs_error"):
                d[key] = d[key] if math.isfinite(d[key]) else None
        return json.dumps(data, indent=2) + "\n"


def read_json(path: Path, report: Report, check: str) -> Any:
    """A JSON file's contents, or None with the finding that says why not."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.add(check, path.name, "missing")
    except (OSError, ValueError) as exc:
        report.add(check, path.name, f"not readable JSON ({exc})")
    return None
