"""Preflight findings: what is wrong, how to fix it, and whether it stops `serve`."""

from __future__ import annotations

from dataclasses import dataclass, field

from glm51.errors import PreflightError
from glm51.findings import Finding, Severity

__all__ = ["Finding", "Report", "Severity"]


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, severity: Severity, message: str, fix: str = "") -> None:
        self.findings.append(Finding(check, severity, message, fix))

    def extend(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def only(self, groups: list[str]) -> Report:
        """The findings of these check groups (the part of the id before the first dot)."""
        return Report([f for f in self.findings if f.check.split(".")[0] in groups])

    def to_json(self, **context: object) -> dict:
        """The report as doctor's --json prints it; ``context`` says what was checked."""
        return {
            **context,
            "ok": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [
                {"check": f.check, "severity": f.severity.value, "message": f.message, "fix": f.fix}
                for f in self.findings
            ],
        }

    def raise_for_errors(self) -> None:
        if self.errors:
            lines = "\n  ".join(f.line() for f in self.errors)
            raise PreflightError(f"preflight found {len(self.errors)} error(s):\n  {lines}")
