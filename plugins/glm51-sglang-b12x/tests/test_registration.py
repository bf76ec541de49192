"""Discovery and registration in the real sglang 0.5.23 (run where it is installed: the image)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("sglang")

from glm51_sglang_b12x import _register, hooks, load

PARSE = textwrap.dedent(
    """
    import argparse, sys
    {pre}
    from sglang.srt.server_args import ServerArgs
    p = argparse.ArgumentParser()
    ServerArgs.add_cli_args(p)
    argv = ["--model-path", "m", "--moe-runner-backend", "b12x", "--fp4-gemm-backend", "b12x"]
    ns = vars(p.parse_args(argv))
    fp4 = ns.get("fp4_gemm_runner_backend") or ns.get("fp4_gemm_backend")
    print("parsed", ns["moe_runner_backend"], fp4)
    """
)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_argparse_rejects_b12x_without_the_plugin():
    r = _python(PARSE.format(pre=""))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "invalid choice: 'b12x'" in r.stderr


def test_argparse_accepts_both_flags_after_the_entry_point_ran():
    pre = (
        "from importlib.metadata import entry_points\n"
        "(ep,) = [e for e in entry_points(group='sglang.srt.plugins') if e.name == 'b12x']\n"
        "ep.load()()"
    )
    r = _python(PARSE.format(pre=pre))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "parsed b12x b12x" in r.stdout


def test_launch_server_help_lists_b12x_for_both_flags():
    r = subprocess.run(
        [sys.executable, "-m", "sglang.launch_server", "--help"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for flag in ("--moe-runner-backend", "--fp4-gemm-backend"):
        start = text.index(flag + " {")
        choices = text[start : text.index("}", start)]
        assert "b12x" in choices.split(","), choices


def test_every_hook_is_applied_and_verified():
    load()
    from sglang.srt.plugins.hook_registry import HookRegistry

    for target, hook in _register.hooks().items():
        assert target in HookRegistry._patched
        assert _register._hook_in_chain(_register._resolve(target), hook)
    _register.verify()  # raises if any is missing


def test_a_missing_hook_target_ends_the_process(monkeypatch):
    monkeypatch.setattr(_register, "_registered", False)
    monkeypatch.setattr(
        _register, "REQUIRED_NAMES", (*_register.REQUIRED_NAMES, "sglang.srt.layers.nowhere.fn")
    )
    with pytest.raises(SystemExit, match="nowhere"):
        load()


def test_an_unapplied_hook_fails_verification(monkeypatch):
    load()
    from sglang.srt.plugins.hook_registry import HookRegistry

    monkeypatch.setattr(HookRegistry, "_patched", set())
    with pytest.raises(_register.PluginLoadError, match="was not applied"):
        _register.verify()


def test_another_sglang_version_ends_the_process(monkeypatch):
    monkeypatch.setattr(_register, "_registered", False)
    monkeypatch.setattr(_register.metadata, "version", lambda name: "0.5.24")
    with pytest.raises(SystemExit, match=r"sglang==0\.5\.23"):
        load()


class _Kernel:
    def __init__(self, backend):
        self.fp4_gemm_runner_backend = backend


class _Exec:
    def __init__(self, backend):
        self.kernel = _Kernel(backend)


def test_fp4_gemm_config_accepts_b12x_only_through_the_hook(monkeypatch):
    load()
    from sglang.srt import runtime_context
    from sglang.srt.layers.quantization import fp4_utils

    monkeypatch.setattr(runtime_context, "get_exec", lambda: _Exec("b12x"))
    monkeypatch.setattr(fp4_utils, "get_exec", lambda: _Exec("b12x"), raising=False)
    original = fp4_utils.initialize_fp4_gemm_config.__wrapped__
    with pytest.raises(ValueError):
        original()  # SGLang's own: a closed Enum
    monkeypatch.setattr("glm51_sglang_b12x.platform.require_sm12x", lambda what: None)
    monkeypatch.setattr(fp4_utils, "FP4_GEMM_RUNNER_BACKEND", None)
    fp4_utils.initialize_fp4_gemm_config()
    backend = fp4_utils.get_fp4_gemm_runner_backend()
    assert isinstance(backend, fp4_utils.Fp4GemmRunnerBackend)
    assert backend.value == "b12x" and backend.get_flashinfer_backend() == "b12x"
    assert fp4_utils.Fp4GemmRunnerBackend("b12x") is backend
    assert not any(getattr(backend, name)() for name in dir(backend) if name.startswith("is_"))
    assert backend.supports_swiglu_fusion()


def test_fp4_hook_leaves_other_backends_to_sglang(monkeypatch):
    load()
    from sglang.srt import runtime_context
    from sglang.srt.layers.quantization import fp4_utils

    monkeypatch.setattr(runtime_context, "get_exec", lambda: _Exec("marlin"))
    monkeypatch.setattr(fp4_utils, "get_exec", lambda: _Exec("marlin"), raising=False)
    monkeypatch.setattr(fp4_utils, "FP4_GEMM_RUNNER_BACKEND", None)
    fp4_utils.initialize_fp4_gemm_config()
    assert fp4_utils.get_fp4_gemm_runner_backend() is fp4_utils.Fp4GemmRunnerBackend.MARLIN


def _nvfp4_config():
    from sglang.srt.layers.quantization.modelopt_quant import ModelOptFp4Config

    return ModelOptFp4Config.from_config(
        {"quantization": {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]}}
    )


def test_quant_method_hook_returns_the_b12x_subclass(monkeypatch):
    load()
    from glm51_sglang_b12x.method import B12xNvFp4FusedMoEMethod
    from sglang.srt.layers.moe import utils
    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE
    from sglang.srt.layers.quantization.modelopt_quant import ModelOptNvFp4FusedMoEMethod

    monkeypatch.setattr(
        utils, "get_moe_runner_backend", lambda: utils.resolve_moe_runner_backend("b12x")
    )
    layer = FusedMoE.__new__(FusedMoE)
    method = _nvfp4_config().get_quant_method(layer, "model.layers.3.mlp.experts")
    assert type(method) is B12xNvFp4FusedMoEMethod
    assert isinstance(method, ModelOptNvFp4FusedMoEMethod)
    assert method.load_up_proj_weight_first is True
    assert not method.use_flashinfer_trtllm_weight_layout


def test_quant_method_hook_leaves_other_moe_backends_alone(monkeypatch):
    load()
    from sglang.srt.layers.moe import utils
    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE
    from sglang.srt.layers.quantization import modelopt_quant

    marlin = utils.MoeRunnerBackend.MARLIN  # SGLang's own NVFP4 MoE method accepts it on CPU
    monkeypatch.setattr(utils, "get_moe_runner_backend", lambda: marlin)
    monkeypatch.setattr(modelopt_quant, "get_moe_runner_backend", lambda: marlin, raising=False)
    assert hooks.b12x_moe_selected() is False
    layer = FusedMoE.__new__(FusedMoE)
    method = _nvfp4_config().get_quant_method(layer, "model.layers.3.mlp.experts")
    assert type(method) is modelopt_quant.ModelOptNvFp4FusedMoEMethod


def test_runner_core_is_registered_for_b12x():
    load()
    from glm51_sglang_b12x.runner_core import B12xRunnerCore
    from sglang.srt.layers.moe.moe_runner import runner
    from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig

    assert runner._CUSTOM_RUNNER_CORE_FACTORIES["b12x"] is B12xRunnerCore
    moe_runner = runner.MoeRunner(runner.resolve_moe_runner_backend("b12x"), MoeRunnerConfig())
    assert isinstance(moe_runner.runner_core, B12xRunnerCore)


def test_expert_and_dp_attention_parallelism_are_refused():
    from glm51_sglang_b12x.method import refuse_non_tp

    refuse_non_tp(moe_ep_size=1, dp_attention=False)
    with pytest.raises(ValueError, match="expert parallelism"):
        refuse_non_tp(moe_ep_size=8, dp_attention=False)
    with pytest.raises(ValueError, match="DP attention"):
        refuse_non_tp(moe_ep_size=1, dp_attention=True)
    with pytest.raises(ValueError, match="moe-a2a-backend deepep"):
        refuse_non_tp(moe_ep_size=1, dp_attention=False, a2a_backend="deepep")


def test_the_a2a_backend_is_read_from_sglang():
    from glm51_sglang_b12x.method import _a2a_backend

    assert _a2a_backend() == "none"  # SGLang's default, no server started


@pytest.mark.parametrize("name", ["weight", "weight_scale"])
def test_sglangs_own_moe_loader_puts_up_first_for_the_b12x_method(name):
    """SGLang's FusedMoE._load_w13 with our method as the layer's quant method: up_proj lands
    in the first half of w13 (b12x's kernel order), gate_proj in the second."""
    from types import SimpleNamespace

    import torch
    from glm51_sglang_b12x.method import B12xNvFp4FusedMoEMethod
    from sglang.srt.layers.moe.fused_moe_triton.layer import FusedMoE
    from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig

    method = B12xNvFp4FusedMoEMethod(_nvfp4_config())
    layer = SimpleNamespace(
        quant_method=method,
        moe_runner_config=MoeRunnerConfig(is_gated=True),
        use_padded_loading=False,
        use_presharded_weights=False,
        use_triton_kernels=False,
        moe_tp_rank=0,
        moe_tp_size=1,
    )
    inter, cols = 4, 8
    dtype = torch.uint8 if name == "weight" else torch.float8_e4m3fn
    gate = torch.full((inter, cols), 1, dtype=torch.uint8).view(dtype)
    up = torch.full((inter, cols), 2, dtype=torch.uint8).view(dtype)
    w13 = torch.zeros((2 * inter, cols), dtype=dtype)
    FusedMoE._load_w13(layer, expert_data=w13, shard_dim=0, shard_id="w1", loaded_weight=gate)
    FusedMoE._load_w13(layer, expert_data=w13, shard_dim=0, shard_id="w3", loaded_weight=up)
    rows = w13.view(torch.uint8)
    assert bool((rows[:inter] == 2).all()) and bool((rows[inter:] == 1).all())


def test_dense_nvfp4_gemm_goes_to_flashinfer_mm_fp4_with_backend_b12x(monkeypatch):
    """SGLang's own dense NVFP4 GEMM entry (modelopt_quant.fp4_gemm) under the b12x backend
    calls FlashInfer's mm_fp4 with backend="b12x" (a recorder stands in for mm_fp4)."""
    import inspect

    import torch
    from glm51_sglang_b12x.hooks import b12x_fp4_backend
    from sglang.kernels.ops import gemm
    from sglang.srt.layers.quantization import fp4_utils, modelopt_quant

    load()
    calls = []

    def mm_fp4(a, b, a_sf, b_sf, alpha, out_dtype, backend):
        calls.append(backend)
        return torch.zeros(a.shape[0], 8, dtype=out_dtype)

    monkeypatch.setattr(fp4_utils, "FP4_GEMM_RUNNER_BACKEND", b12x_fp4_backend())
    monkeypatch.setattr(modelopt_quant, "flashinfer_fp4_gemm", mm_fp4, raising=False)
    monkeypatch.setattr(modelopt_quant, "enable_flashinfer_fp4_gemm", True, raising=False)
    monkeypatch.setattr(gemm, "try_qwen3x_nvfp4_gemm", lambda *a, **k: None)
    x = torch.zeros(2, 16, dtype=torch.uint8)
    # The registered custom op has no CPU kernel: call the Python body SGLang registered.
    body = inspect.unwrap(modelopt_quant.fp4_gemm)
    assert body.__module__ == modelopt_quant.__name__ and body.__name__ == "fp4_gemm"
    out = body(
        x, torch.zeros(8, 16, dtype=torch.uint8), None, torch.zeros(8, 2), torch.ones(()),
        torch.bfloat16, 8,
    )  # fmt: skip
    assert calls == ["b12x"] and out.shape == (2, 8)
