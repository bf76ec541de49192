"""Registration of `b12x` in SGLang 0.5.23, and the proof that every hook took effect."""

from __future__ import annotations

import logging
import pkgutil
from collections.abc import Callable
from importlib import metadata

from . import PluginLoadError
from .constants import BACKEND, SGLANG_VERSION

logger = logging.getLogger("glm51_sglang_b12x")

FP4_INIT_TARGET = "sglang.srt.layers.quantization.fp4_utils.initialize_fp4_gemm_config"
QUANT_METHOD_TARGET = (
    "sglang.srt.layers.quantization.modelopt_quant.ModelOptFp4Config.get_quant_method"
)
# Module-level names the hooks and the method subclass rely on, checked before anything is hooked.
REQUIRED_NAMES = (
    "sglang.srt.arg_groups.choices.add_moe_runner_backend_choices",
    "sglang.srt.arg_groups.choices.add_fp4_gemm_runner_backend_choices",
    "sglang.srt.arg_groups.choices.MOE_RUNNER_BACKEND_CHOICES",
    "sglang.srt.arg_groups.choices.FP4_GEMM_RUNNER_BACKEND_CHOICES",
    "sglang.srt.layers.moe.moe_runner.runner.register_moe_runner_core",
    "sglang.srt.layers.moe.moe_runner.runner._CUSTOM_RUNNER_CORE_FACTORIES",
    "sglang.srt.layers.moe.moe_runner.base.DispatchMoeRunnerCore",
    "sglang.srt.layers.moe.utils.resolve_moe_runner_backend",
    "sglang.srt.layers.quantization.fp4_utils.Fp4GemmRunnerBackend",
    "sglang.srt.layers.quantization.fp4_utils.FP4_GEMM_RUNNER_BACKEND",
    "sglang.srt.layers.quantization.modelopt_quant.ModelOptNvFp4FusedMoEMethod",
    "sglang.srt.layers.quantization.modelopt_quant.ModelOptFp4Config._get_quant_method",
    "sglang.srt.layers.moe.token_dispatcher.standard.StandardCombineInput",
    "sglang.srt.runtime_context.get_exec",
    "sglang.srt.runtime_context.get_schedule",
    FP4_INIT_TARGET,
    QUANT_METHOD_TARGET,
)

_registered = False


def _resolve(name: str) -> object:
    try:
        return pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PluginLoadError(f"SGLang has no {name} ({exc})") from exc


def check_versions() -> None:
    have = metadata.version("sglang")
    if have != SGLANG_VERSION:
        raise PluginLoadError(
            f"built for sglang=={SGLANG_VERSION}, found sglang {have}: its hook targets may differ"
        )


def hooks() -> dict[str, Callable[..., object]]:
    """The two hooks (SGLang's AROUND type), by target: the closed enum and the MoE method."""
    from .hooks import get_quant_method_hook, initialize_fp4_gemm_config_hook

    return {
        FP4_INIT_TARGET: initialize_fp4_gemm_config_hook,
        QUANT_METHOD_TARGET: get_quant_method_hook,
    }


def register() -> None:
    global _registered
    if _registered:
        verify()
        return
    check_versions()
    for name in REQUIRED_NAMES:
        _resolve(name)

    from sglang.srt.arg_groups import choices
    from sglang.srt.layers.moe.moe_runner import runner
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from .runner_core import B12xRunnerCore

    if BACKEND not in choices.MOE_RUNNER_BACKEND_CHOICES:
        choices.add_moe_runner_backend_choices([BACKEND])
    if BACKEND not in choices.FP4_GEMM_RUNNER_BACKEND_CHOICES:
        choices.add_fp4_gemm_runner_backend_choices([BACKEND])
    if BACKEND not in runner._CUSTOM_RUNNER_CORE_FACTORIES:
        runner.register_moe_runner_core(BACKEND, B12xRunnerCore)
    for target, hook in hooks().items():
        HookRegistry.register(target, hook, HookType.AROUND)
    # load_plugins() applies hooks after every plugin ran, and only logs a failure: apply ours
    # now (apply_hooks skips targets already patched, so the second pass is a no-op) and check.
    HookRegistry.apply_hooks()
    verify()
    _registered = True
    logger.info("glm51-sglang-b12x: b12x registered for --moe-runner-backend, --fp4-gemm-backend")


def _hook_in_chain(fn: object, hook: Callable[..., object]) -> bool:
    seen = 0
    while fn is not None and seen < 16:
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                if cell.cell_contents is hook:
                    return True
            except ValueError:  # an empty cell
                continue
        fn = getattr(fn, "__wrapped__", None)
        seen += 1
    return False


def verify() -> None:
    """Every hook target exists and is wrapped by our hook; both choices and the core exist."""
    from sglang.srt.arg_groups import choices
    from sglang.srt.layers.moe.moe_runner import runner
    from sglang.srt.plugins.hook_registry import HookRegistry

    problems = []
    for target, hook in hooks().items():
        current = _resolve(target)
        if target not in HookRegistry._patched or not _hook_in_chain(current, hook):
            problems.append(f"hook on {target} was not applied")
    if BACKEND not in choices.MOE_RUNNER_BACKEND_CHOICES:
        problems.append("b12x is not a --moe-runner-backend choice")
    if BACKEND not in choices.FP4_GEMM_RUNNER_BACKEND_CHOICES:
        problems.append("b12x is not a --fp4-gemm-backend choice")
    if BACKEND not in runner._CUSTOM_RUNNER_CORE_FACTORIES:
        problems.append("no b12x MoE runner core is registered")
    if problems:
        raise PluginLoadError("; ".join(problems))
