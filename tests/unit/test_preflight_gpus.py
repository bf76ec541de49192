"""The GPU adapter over nvidia-smi, fed recorded outputs, and the GPU checks."""

import os

import pytest

from glm51.preflight import gpus
from glm51.preflight.findings import Severity
from tests.support.fakes import DOUBLES, gpu_probe, smi_output


def ids(findings):
    return {f.check: f for f in findings}


def test_parses_the_profile_machine():
    found = gpu_probe("rtx-pro-6000-x8-595")()
    assert len(found) == 8
    assert found[0] == gpus.GpuInfo(
        0, "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "12.0", "595.45.04", 97887
    )


def test_the_profile_machine_passes(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")
    assert gpus.check(profile, gpu_probe("rtx-pro-6000-x8-595")()) == []


def test_too_few_gpus(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")
    finding = ids(gpus.check(profile, gpu_probe("rtx-pro-6000-x4-595")()))["gpu.count"]
    assert finding.severity is Severity.ERROR
    assert "found 4, the profile needs 8" in finding.message


def test_old_driver(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")
    finding = ids(gpus.check(profile, gpu_probe("rtx-pro-6000-x8-580")()))["gpu.driver"]
    assert finding.severity is Severity.ERROR
    assert "driver 580.95.05 is older than the profile's minimum 595" in finding.message
    assert "GPUs 0, 1, 2, 3, 4, 5, 6, 7" in finding.message


def test_not_blackwell_is_an_error_for_b12x_and_a_warning_otherwise(recipe):
    h100 = gpu_probe("h100-x8")()
    _, b12x = recipe.profile("rtx-pro-6000-x8")
    cc = ids(gpus.check(b12x, h100))["gpu.compute-capability"]
    assert cc.severity is Severity.ERROR
    assert "compute capability 9.0" in cc.message and "b12x kernels need 12.x" in cc.message
    _, upstream = recipe.profile("rtx-pro-6000-x8-upstream")
    found = ids(gpus.check(upstream, h100))
    assert found["gpu.compute-capability"].severity is Severity.WARNING
    assert found["gpu.model"].severity is Severity.WARNING
    assert found["gpu.memory"].severity is Severity.WARNING


def test_failure_text_is_no_gpu():
    with pytest.raises(gpus.NoGpu, match="unexpected nvidia-smi output: NVIDIA-SMI has failed"):
        gpus.parse(smi_output("failed-no-driver").read_text())


def test_adapter_runs_nvidia_smi_through_proc(monkeypatch):
    monkeypatch.setenv("PATH", f"{DOUBLES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NVIDIA_SMI_OUTPUT", str(smi_output("rtx-pro-6000-x4-595")))
    assert len(gpus.nvidia_smi()) == 4


def test_adapter_reports_a_failing_nvidia_smi(monkeypatch):
    monkeypatch.setenv("PATH", f"{DOUBLES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NVIDIA_SMI_OUTPUT", str(smi_output("failed-no-driver")))
    monkeypatch.setenv("FAKE_NVIDIA_SMI_RC", "9")
    with pytest.raises(gpus.NoGpu, match="exited with 9: NVIDIA-SMI has failed because"):
        gpus.nvidia_smi()


def test_adapter_reports_a_missing_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(gpus.NoGpu, match="nvidia-smi: command not found"):
        gpus.nvidia_smi()


def test_cuda_visible_devices_limits_the_gpus():
    found = gpu_probe("rtx-pro-6000-x8-595")()
    assert [g.index for g in gpus.visible(found, "0,2")] == [0, 2]
    assert gpus.visible(found, None) == found
    assert gpus.visible(found, "GPU-1234") == found  # UUIDs: left as they are
