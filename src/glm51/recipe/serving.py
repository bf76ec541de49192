"""Recipe models for SGLang builds and serve profiles."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from glm51.recipe.base import Strict

Port = Annotated[int, Field(ge=1, le=65535)]


class SGLangBuild(Strict):
    """One SGLang build a profile can require, and the backends it is known to offer."""

    description: str
    source: Literal["pypi", "git"]
    version: str | None = Field(None, description="PyPI version (source = pypi)")
    git_url: str | None = Field(None, description="repository (source = git)")
    commit: str | None = Field(None, description="full 40-hex commit sha (source = git)")
    fp4_gemm_backends: tuple[str, ...]
    moe_runner_backends: tuple[str, ...]
    attention_backends: tuple[str, ...]
    plugins: tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], ...] = Field(
        (),
        description=(
            "SGLang plugin distributions kept in this repository (plugins/<name>) that the image "
            "installs with this build; the backends they add are in the lists above"
        ),
    )

    @model_validator(mode="after")
    def _pinned(self) -> SGLangBuild:
        if self.source == "pypi" and not self.version:
            raise ValueError("source = 'pypi' needs version (an exact release, e.g. '0.5.23')")
        if self.source == "git":
            if not self.git_url:
                raise ValueError("source = 'git' needs git_url")
            if not self.commit or not re.fullmatch(r"[0-9a-f]{40}", self.commit):
                raise ValueError(
                    "source = 'git' needs commit: a full 40-hex sha (branches are never used)"
                )
        return self


class Hardware(Strict):
    """The machine a profile is for."""

    gpu_name: str = Field(description="substring of nvidia-smi's name, e.g. 'RTX PRO 6000'")
    gpu_count: int = Field(ge=1)
    compute_capability: str = Field(pattern=r"^\d+\.\d+$", description="e.g. '12.0'")
    min_driver: str = Field(pattern=r"^\d+(\.\d+)*$", description="minimum driver, e.g. '595'")
    min_memory_mib: int = Field(0, ge=0, description="minimum memory per GPU")
    nodes: int = Field(1, ge=1, description="nodes one replica spans; gpu_count is per node")

    @property
    def major(self) -> int:
        return int(self.compute_capability.split(".")[0])


class Speculative(Strict):
    algorithm: Literal["NEXTN", "EAGLE", "EAGLE3"]
    num_steps: int = Field(ge=1)
    eagle_topk: int = Field(ge=1)
    num_draft_tokens: int = Field(ge=1)


class ServerArgs(Strict):
    """SGLang server arguments. Rendered in declaration order as --kebab-case flags."""

    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    tp: int = Field(1, ge=1)
    pp_size: int | None = Field(None, ge=1, description="pipeline-parallel stages (--pp-size)")
    trust_remote_code: bool = False
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    fp4_gemm_backend: str | None = None
    attention_backend: str | None = None
    moe_runner_backend: str | None = None
    disable_shared_experts_fusion: bool = False
    mem_fraction_static: float | None = Field(None, gt=0, le=1)
    max_running_requests: int | None = Field(None, ge=1)
    cuda_graph_max_bs: int | None = Field(None, ge=1, description="the fork's flag")
    cuda_graph_max_bs_decode: int | None = Field(
        None, ge=1, description="upstream 0.5.23's name (it split --cuda-graph-max-bs)"
    )
    speculative: Speculative | None = None
    host: str = "127.0.0.1"
    port: Port = 30000
    extra_args: tuple[str, ...] = Field((), description="further sglang flags, verbatim")


class Profile(Strict):
    """A validated (or not yet validated) way to serve the checkpoint."""

    description: str
    sglang_build: str = Field(description="a key of [sglang_builds]")
    validated: bool = Field(description="true only with hardware evidence")
    evidence: str = Field(description="where the numbers and the configuration come from")
    hardware: Hardware
    env: dict[str, str] = Field(default_factory=dict)
    node_env: tuple[str, ...] = Field(
        (),
        description="environment variables every node must set itself (NCCL/Gloo network "
        "interfaces): preflight refuses to start a node without them",
    )
    server: ServerArgs

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return env

    @property
    def uses_b12x(self) -> bool:
        return "b12x" in (self.server.fp4_gemm_backend, self.server.moe_runner_backend)


class ServeDefaults(Strict):
    default_profile: str = Field(description="a key of [profiles]")
