"""`glm51 fidelity`'s arithmetic against independent references: NVFP4 activation quantization
(tests/support/nvfp4_reference, written from the format), KL and top-1 per position, the
distribution, the error sums; the recipe's [fidelity] sections and the held-out check."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from glm51.errors import InputError
from glm51.fidelity import numerics
from tests.conftest import REPO
from tests.support import nvfp4_reference as ref


def _reference_unit(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """q * s from the format's definition: E4M3 block scale of amax / fl(6 g), E2M1 codes of
    x / fl(s g) (ties to the even code), decoded through the code table."""
    blocks = x.float().reshape(x.shape[0], -1, 16)
    s = (blocks.abs().amax(-1) / (6.0 * g)).clamp(max=448).to(torch.float8_e4m3fn).float()
    codes = ref.e2m1_codes(blocks / (s.unsqueeze(-1) * g)).long()
    values = ref.GRID[codes & 7] * torch.where(codes >= 8, -1.0, 1.0)
    return (values * s.unsqueeze(-1)).reshape(x.shape)


def test_e2m1_rounding_matches_the_reference_codes_including_every_tie():
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    x = torch.cat([ties, torch.linspace(0, 7, 2001), torch.rand(5000) * 6.5])
    codes = ref.e2m1_codes(x).long()
    expected = ref.GRID[codes & 7]
    assert torch.equal(numerics.e2m1_round(x).clamp(max=6), expected)
    # The ties, spelled out: each goes to the even code.
    assert numerics.e2m1_round(ties).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]


def test_activation_quantization_matches_the_format_definition_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(64, 128, generator=g) * torch.logspace(-3, 1, 128)).to(torch.bfloat16)
    amax = x.float().abs().max()
    input_scale = amax / (6 * 448)
    got = numerics.unit_fake_quantize(x, input_scale)
    assert torch.equal(got, _reference_unit(x, input_scale))
    # x^ is at most half a grid step from x (relative to the block's scale): a real quantizer.
    x_hat = numerics.fake_quantize(x, input_scale)
    assert 0 < (x_hat - x.float()).abs().max() <= amax / 6
    assert not torch.equal(x_hat, x.float())


def test_an_input_above_the_calibrated_range_saturates_and_a_zero_block_stays_zero():
    x = torch.zeros(2, 32)
    x[0, :16] = torch.linspace(-1, 1, 16)
    x[1, 16:] = 100.0  # far above amax = 1: the block scale saturates at 448, values at 6
    out = numerics.fake_quantize(x, torch.tensor(1.0 / (6 * 448)))
    assert torch.equal(out[0, 16:], torch.zeros(16)) and torch.equal(out[1, :16], torch.zeros(16))
    assert torch.allclose(out[1, 16:], torch.full((16,), 1.0))  # 6 * 448 * g = 1
    assert torch.isfinite(out).all()


def test_kl_is_exactly_zero_for_identical_logits_and_the_closed_form_otherwise():
    logits = torch.randn(300, 50, dtype=torch.float32).to(torch.bfloat16)
    kl, agree = numerics.position_kl(logits, logits.clone(), chunk=64)
    assert kl.dtype == torch.float64 and kl.shape == (300,)
    assert torch.count_nonzero(kl) == 0 and bool(agree.all())
    # Two outcomes: KL(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q)).
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    kl, agree = numerics.position_kl(a, b)
    p, q = 0.5, 1 / (1 + np.exp(-1.0))
    assert kl[0].item() == pytest.approx(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    p, q = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0))
    assert kl[1].item() == pytest.approx(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    assert agree.tolist() == [True, False]  # argmax 0 vs 0 (a tie resolves to the first), 0 vs 1


def test_the_distribution_and_the_error_sums():
    d = numerics.distribution(np.arange(101, dtype=float))
    assert (d.mean, d.median, d.p95, d.p99, d.max) == (50.0, 50.0, 95.0, 99.0, 100.0)
    with pytest.raises(ValueError):
        numerics.distribution([])
    s = numerics.ErrorSum()
    r = torch.tensor([3.0, 4.0])
    s.add(r, r)
    assert s.relative == 0 and s.cosine == pytest.approx(1.0)
    s.add(torch.tensor([0.0]), torch.tensor([5.0]))  # ||diff|| 5 against ||ref|| 5
    assert s.relative == pytest.approx(1.0) and s.cosine == pytest.approx(25 / (5 * 50**0.5))


def test_the_recipe_has_the_fidelity_budget_and_both_gate_sets(recipe):
    assert recipe.fidelity.sequences * recipe.fidelity.tokens_per_sequence == 204_800
    assert recipe.fidelity_manifest().is_file()
    assert recipe.gates.fidelity.kl_mean_max > 0 and 0 < recipe.gates.fidelity.top1_min <= 1
    assert recipe.rehearsal.gates.fidelity.kl_mean_max > 0
    assert recipe.rehearsal.fidelity.sequences >= 1


def test_a_missing_gate_key_names_the_file_and_the_key(recipe_text, tmp_path):
    from glm51.recipe.load import parse_recipe

    broken = recipe_text.replace("kl_p99_max = 0.5\n", "", 1)
    with pytest.raises(InputError, match=r"gates\.fidelity\.kl_p99_max"):
        parse_recipe(broken, "release/glm51.toml")


def _recipe_copy(tmp_path, manifest_text: str | None = None, manifest: str | None = None):
    from glm51.recipe.load import load_recipe

    release = tmp_path / "release"
    shutil.copytree(REPO / "release", release)
    if manifest_text is not None:
        (release / "calibration" / "fidelity.toml").write_text(manifest_text)
    text = (release / "glm51.toml").read_text()
    if manifest is not None:
        text = text.replace('manifest = "calibration/fidelity.toml"', f'manifest = "{manifest}"')
    (release / "glm51.toml").write_text(text)
    return load_recipe(release / "glm51.toml")


def test_the_recipes_fidelity_text_is_held_out(tmp_path):
    from glm51.fidelity.inputs import check_held_out

    assert check_held_out(_recipe_copy(tmp_path)).name == "fidelity"


def test_a_fidelity_manifest_that_is_a_calibration_pass_is_refused(tmp_path):
    from glm51.fidelity.inputs import check_held_out

    recipe = _recipe_copy(tmp_path, manifest="calibration/coding.toml")
    with pytest.raises(InputError, match=r"fidelity\.manifest: .*coding.toml is calibration pass"):
        check_held_out(recipe)


def test_a_fidelity_manifest_sharing_a_dataset_with_a_pass_is_refused(tmp_path):
    from glm51.fidelity.inputs import check_held_out

    text = (REPO / "release" / "calibration" / "fidelity.toml").read_text()
    text = text.replace("HuggingFaceH4/ultrachat_200k", "lmsys/lmsys-chat-1m")
    recipe = _recipe_copy(tmp_path, manifest_text=text)
    with pytest.raises(InputError, match=r"lmsys/lmsys-chat-1m, which calibration pass 'broad'"):
        check_held_out(recipe)


def test_the_draw_is_seeded_ordered_and_cut_to_the_budget():
    from glm51.fidelity.inputs import select

    samples = [[i] * (10 + i) for i in range(20)]
    a = select(samples, 5, 12, seed=7, where="x")
    assert a == select(samples, 5, 12, seed=7, where="x") != select(samples, 5, 12, 8, "x")
    assert all(len(s) <= 12 for s in a) and [s[0] for s in a] == sorted(s[0] for s in a)
    with pytest.raises(InputError, match="21"):
        select(samples, 21, 12, seed=7, where="x")


def test_the_estimate_at_glm51_scale_holds_one_layer_twice_over_its_experts_and_the_streams():
    from glm51.fidelity.estimate import estimate
    from glm51.quantize import estimate as quantize_estimate
    from tests.support.glm51_config import GLM51

    e = estimate(GLM51, [1024] * 200, device="cuda")
    assert e.positions == 204_800
    assert e.streams_bytes == 2 * 204_800 * 6144 * 2  # 5.0 GB, as docs/fidelity.md says
    routed = max(x.mlp_routed for x in quantize_estimate.layer_params(GLM51)) * 2
    assert e.candidate_bytes == routed and 18e9 < routed < 20e9  # 256 x 3 x 2048 x 6144 BF16
    assert e.device_bytes < 80e9  # one layer at a time fits one GPU
    assert e.host_bytes == e.streams_bytes + e.layer_bytes + routed
    on_cpu = estimate(GLM51, [1024] * 200, device="cpu")
    assert on_cpu.host_bytes > on_cpu.device_bytes + on_cpu.streams_bytes
    assert "204,800 positions" in e.render()


def test_a_figure_at_its_threshold_passes_and_one_past_it_fails():
    """'fail when above' / 'fail when fewer': the bounds themselves pass."""
    from glm51.fidelity.stage import gates
    from glm51.recipe.fidelity import FidelityGates
    from glm51.records.fidelity import KLStats

    bounds = FidelityGates(kl_mean_max=0.05, kl_p99_max=0.5, top1_min=0.9)
    at = KLStats(mean=0.05, median=0.01, p95=0.2, p99=0.5, max=3.0)
    assert all(g.passed for g in gates(at, 0.9, bounds))
    past = at.model_copy(update={"mean": 0.0500001, "p99": 0.5000001})
    verdicts = {g.name: g.passed for g in gates(past, 0.8999999, bounds)}
    assert verdicts == {"kl_mean": False, "kl_p99": False, "top1": False}
    assert [(g.name, g.value, g.threshold, g.bound) for g in gates(at, 0.9, bounds)] == [
        ("kl_mean", 0.05, 0.05, "max"),
        ("kl_p99", 0.5, 0.5, "max"),
        ("top1", 0.9, 0.9, "min"),
    ]
