"""glm51-sglang-b12x: `b12x` for SGLang 0.5.23's `--moe-runner-backend` and `--fp4-gemm-backend`.

SGLang runs `load()` (entry point group `sglang.srt.plugins`) early in every process. SGLang
logs and then ignores an exception raised by a plugin, and only logs a hook it failed to apply;
a half-installed backend would then fail much later, or serve through another kernel. So any
failure here ends the process with `SystemExit` and a message that names what is missing.
"""

from __future__ import annotations

__all__ = ["PluginLoadError", "load"]


class PluginLoadError(RuntimeError):
    """The plugin cannot register b12x in this SGLang (wrong version, missing hook target...)."""


def load() -> None:
    """Entry point: register the choices, the runner core and the hooks, then verify them."""
    try:
        from ._register import register

        register()
    except Exception as exc:  # SGLang swallows Exception from a plugin: turn it into an exit
        raise SystemExit(f"glm51-sglang-b12x: cannot register b12x: {exc}") from exc
