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


# --- boundaries, orderings, selections (docs/testing.md, mutation testing) ---

RTX = "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"


def gpu(index=0, *, name=RTX, cc="12.0", driver="595.45.04", mem=97887):
    return gpus.GpuInfo(index, name, cc, driver, mem)


def with_hardware(profile, **changes):
    return profile.model_copy(update={"hardware": profile.hardware.model_copy(update=changes)})


@pytest.mark.parametrize(
    ("driver", "minimum", "old"),
    [
        # text order and numeric order disagree: only a numeric comparison gets these right
        ("1000.12", "595", False),
        ("580.105.08", "580.65.06", False),
        ("580.65.06", "580.105.08", True),
        ("96.1", "595", True),
        # boundaries
        ("595", "595", False),
        ("595.45.04", "595", False),
        ("594.99", "595", True),
        ("595.45.04", "595.45.05", True),
    ],
)
def test_driver_versions_compare_as_numbers(profile, driver, minimum, old):
    profile = with_hardware(profile, min_driver=minimum, gpu_count=1)
    found = ids(gpus.check(profile, [gpu(driver=driver)]))
    assert ("gpu.driver" in found) is old
    if old:
        assert found["gpu.driver"].message == (
            f"GPU 0 ({RTX}): driver {driver} is older than the profile's minimum {minimum}"
        )
        assert found["gpu.driver"].fix == f"install NVIDIA driver {minimum} or newer"


def test_only_the_old_drivers_are_named(profile):
    found = [gpu(0), gpu(1, driver="580.105.08"), gpu(2), gpu(3, driver="1000.1")]
    finding = ids(gpus.check(with_hardware(profile, gpu_count=4), found))["gpu.driver"]
    assert finding.message.startswith(f"GPU 1 ({RTX}): driver 580.105.08 is older")


def test_gpu_count_boundary(profile):
    eight = [gpu(i) for i in range(8)]
    assert gpus.check(profile, eight) == []
    assert gpus.check(profile, [*eight, gpu(8)]) == []
    finding = ids(gpus.check(profile, eight[:7]))["gpu.count"]
    assert finding.severity is Severity.ERROR
    assert finding.message == "too few GPUs: found 7, the profile needs 8 (tp 8)"
    assert "--profile" in finding.fix


def test_memory_boundary(profile):
    profile = with_hardware(profile, gpu_count=2, min_memory_mib=95000)
    assert gpus.check(profile, [gpu(0, mem=95000), gpu(1, mem=95001)]) == []
    finding = ids(gpus.check(profile, [gpu(0), gpu(1, mem=94999)]))["gpu.memory"]
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        f"GPU 1 ({RTX}): 94999 MiB, the profile expects at least 95000 MiB per GPU"
    )
    assert "--mem-fraction-static" in finding.fix


def test_mixed_models_warn_and_name_the_others(profile):
    found = [gpu(0), gpu(1, name="NVIDIA H100 80GB HBM3"), gpu(2, name="NVIDIA H100 80GB HBM3")]
    found = ids(gpus.check(with_hardware(profile, gpu_count=3), found))
    assert found["gpu.mixed"].severity is Severity.WARNING
    assert found["gpu.mixed"].message == f"mixed GPU models: NVIDIA H100 80GB HBM3, {RTX}"
    assert found["gpu.mixed"].fix == "set CUDA_VISIBLE_DEVICES to identical GPUs"
    model = found["gpu.model"]
    assert model.message == (
        "GPUs 1, 2 (NVIDIA H100 80GB HBM3): not a RTX PRO 6000, the profile's hardware"
    )


def test_model_match_ignores_case(profile):
    found = [gpu(0, name=RTX.upper())]
    assert gpus.check(with_hardware(profile, gpu_count=1), found) == []


def test_same_major_other_minor_is_a_warning_even_for_b12x(profile):
    assert profile.uses_b12x
    found = ids(gpus.check(with_hardware(profile, gpu_count=1), [gpu(0, cc="12.1")]))
    cc = found["gpu.compute-capability"]
    assert cc.severity is Severity.WARNING
    assert cc.message == f"GPU 0 ({RTX}): compute capability 12.1, the profile is for 12.0"
    assert cc.fix == "check that the profile's backends support this GPU"


def test_other_family_with_b12x_is_fatal(profile):
    found = [gpu(0), gpu(1, cc="10.0")]
    cc = ids(gpus.check(with_hardware(profile, gpu_count=2), found))["gpu.compute-capability"]
    assert cc.severity is Severity.ERROR
    assert cc.message == (
        f"GPU 1 ({RTX}): compute capability 10.0, the profile is for 12.0 "
        "(the b12x kernels need 12.x)"
    )
    assert cc.fix.startswith("use Blackwell 12.x GPUs")


def test_cc_major():
    assert gpu(cc="12.0").cc_major == 12
    assert gpu(cc="9.0").cc_major == 9


def test_parse_skips_blank_lines_and_reads_float_memory():
    text = f"\n0, {RTX}, 12.0, 595.45.04, 97887.0\n  \n1, {RTX}, 12.0, 595.45.04, 97887\n"
    assert gpus.parse(text) == [gpu(0), gpu(1)]


@pytest.mark.parametrize(
    "line",
    [f"0, {RTX}, 12.0, 595.45.04", f"0, {RTX}, 12.0, 595, 1, 2", f"x, {RTX}, 12.0, 595, 97887"],
)
def test_parse_rejects_other_rows(line):
    with pytest.raises(gpus.NoGpu) as err:
        gpus.parse(f"{line}\n")
    assert str(err.value) == f"unexpected nvidia-smi output: {line}"


def test_parse_of_nothing_is_no_gpu():
    with pytest.raises(gpus.NoGpu, match=r"^nvidia-smi listed no GPUs$"):
        gpus.parse("\n \n")


def test_visible_selects_in_the_given_order_and_drops_unknown_indices():
    found = [gpu(i) for i in range(4)]
    assert [g.index for g in gpus.visible(found, " 3 , 1,,9")] == [3, 1]
    assert gpus.visible(found, "") == []  # CUDA_VISIBLE_DEVICES="" hides every GPU
    assert gpus.visible(found, "0,GPU-1234") == found  # not only indices: left as it is


def test_no_gpu_finding():
    finding = gpus.no_gpu_finding("nvidia-smi: command not found")
    assert finding.check == "gpu.none"
    assert finding.severity is Severity.ERROR
    assert finding.message == "no GPU found: nvidia-smi: command not found"
    assert "docker run --gpus all" in finding.fix


def test_nvidia_smi_is_bounded_and_its_failure_quoted(monkeypatch):
    from glm51.proc import Result

    calls = []
    said = ["NVIDIA-SMI has failed " + "x" * 200, "because " + "y" * 200]

    def fake_run(argv, **kw):
        calls.append((argv, kw))
        return Result(list(argv), 9, "\n".join(said) + "\n", "")

    monkeypatch.setattr(gpus.proc, "run", fake_run)
    with pytest.raises(gpus.NoGpu) as err:
        gpus.nvidia_smi()
    assert calls == [(gpus.QUERY, {"check": False, "timeout": 60})]
    assert str(err.value) == f"nvidia-smi exited with 9: {' '.join(said)[:300]}"


def test_the_fixes_say_what_to_do(profile):
    found = [gpu(0, name="NVIDIA H100 80GB HBM3", cc="12.0", mem=1)]
    found = ids(gpus.check(with_hardware(profile, gpu_count=2, min_memory_mib=2), found))
    assert found["gpu.count"].fix == (
        "run on a machine with enough GPUs, or pick a profile for this machine (--profile)"
    )
    assert found["gpu.model"].fix == (
        "expect different memory and speed; the profile's numbers do not apply"
    )
    assert found["gpu.memory"].fix == (
        "lower --mem-fraction-static / --max-running-requests, or expect out-of-memory"
    )
    assert gpus.no_gpu_finding("r").fix == (
        "install the NVIDIA driver and run with the GPUs visible "
        "(docker run --gpus all); `nvidia-smi` must work"
    )
