"""Render a serve profile into the exact sglang argv and environment (pure)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glm51.recipe.schema import Recipe
from glm51.recipe.serving import Profile
from glm51.sglang.flags import server_flags


@dataclass(frozen=True)
class Placement:
    """Where this process sits in a replica that spans nodes (SGLang's multi-node flags)."""

    nnodes: int
    node_rank: int
    dist_init_addr: str  # HOST:PORT of node 0, where the ranks meet

    def flags(self) -> list[str]:
        return [
            "--nnodes",
            str(self.nnodes),
            "--node-rank",
            str(self.node_rank),
            "--dist-init-addr",
            self.dist_init_addr,
        ]


@dataclass(frozen=True)
class LaunchSpec:
    """What `glm51 serve` runs: argv plus the variables added to the environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 30000

    def shell(self) -> str:
        """The command as one shell line, every word quoted."""
        assignments = [f"{name}={shlex.quote(value)}" for name, value in self.env.items()]
        return " ".join([*assignments, shlex.join(self.argv)])


def render(
    recipe: Recipe,
    profile: Profile,
    *,
    model_path: Path | str,
    host: str | None = None,
    port: int | None = None,
    passthrough: Sequence[str] = (),
    python: str = sys.executable,
    placement: Placement | None = None,
    key_config: Path | str | None = None,
) -> LaunchSpec:
    """The sglang launch for ``profile`` on ``model_path``; ``passthrough`` goes last, as given.

    ``key_config``: a YAML file holding `api-key` (SGLang's `--config`), so the key never
    appears in argv; SGLang 0.5.23 reads --api-key from no environment variable."""
    host = host or profile.server.host
    port = port or profile.server.port
    argv = [
        python,
        "-m",
        "sglang.launch_server",
        "--model-path",
        str(model_path),
        "--served-model-name",
        recipe.model.served_name,
        *server_flags(profile.server, host=host, port=port),
        *(placement.flags() if placement else ()),
        *(("--config", str(key_config)) if key_config is not None else ()),
        *passthrough,
    ]
    return LaunchSpec(tuple(argv), dict(profile.env), host=host, port=port)
