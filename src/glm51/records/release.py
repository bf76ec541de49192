"""The release run manifest: what a `glm51 release` run did, step by step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from glm51.records.base import Record, ToolVersions

StepStatus = Literal["done", "failed", "running", "skipped"]


class StepEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    status: StepStatus
    key: str  # digest of the step's inputs and of every earlier step's key
    record: str | None = None  # the step's own record, relative to the run directory
    started_at: str | None = None
    seconds: float | None = None
    message: str = ""  # what it produced, or why it failed
    exit_code: int | None = None  # the typed error's exit code when it failed


class RunManifest(Record):
    kind: Literal["release-run"] = "release-run"
    version: str
    rehearsal: bool
    inputs: dict[str, str] = Field(default_factory=dict)  # recipe digest, git sha, options
    tools: ToolVersions = ToolVersions()
    steps: tuple[StepEntry, ...] = ()

    def entry(self, name: str) -> StepEntry | None:
        return next((s for s in self.steps if s.name == name), None)
