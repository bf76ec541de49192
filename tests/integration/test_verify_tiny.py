"""`glm51 verify` on a real NVFP4 export: the tiny glm_moe_dsa model quantized on CPU."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import read_header
from glm51.checkpoint.verify import verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export(tiny_model, tokenizer, tmp_path_factory, recipe) -> Path:
    """One resident quantization (the conftest's `runs` makes five; one is enough here)."""
    from glm51.calib.data import from_jsonl
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.pipeline import quantize

    tmp = tmp_path_factory.mktemp("verify")
    calib = from_jsonl(write_jsonl(tmp / "c.jsonl", 4, 1), tokenizer, max_length=256, name="c")
    return quantize(
        tiny_model, tmp / "nvfp4", {"c": [calib]}, recipe.quantize, work_dir=tmp / "work"
    ).output


def test_quantize_writes_a_manifest_that_verify_matches(export, recipe):
    manifest = mf.read(export)
    assert set(manifest.shards) == {p.name for p in export.glob("*.safetensors")}
    assert manifest.producer.get("name") == "modelopt"
    assert manifest.recipe.algorithm == "NVFP4"
    report = verify(export, recipe)
    assert report.ok, report.problems
    assert report.manifest == "matched"
    assert report.nvfp4_modules > 0 and report.bf16_modules > 0


def test_source_deep_check_passes_on_the_real_export(export, tiny_model, recipe):
    report = verify(export, recipe, source=tiny_model, samples=6)
    assert report.ok, report.problems
    assert len(report.deep) == 6
    # NVFP4 (E2M1 with E4M3 block scales) keeps a random Gaussian weight within about 10%.
    assert all(0 < d.rel_error < 0.15 for d in report.deep)


def test_source_deep_check_catches_wrong_global_scales(export, tiny_model, recipe, tmp_path):
    broken = shutil.copytree(export, tmp_path / "broken")
    for shard in broken.glob("*.safetensors"):
        header = read_header(shard)
        with shard.open("r+b") as fh:
            for name, info in header.tensors.items():
                if name.endswith(".weight_scale_2"):
                    fh.seek(8 + header.header_len + info.begin)
                    (value,) = struct.unpack("<f", fh.read(4))
                    fh.seek(8 + header.header_len + info.begin)
                    fh.write(struct.pack("<f", value * 4))
    report = verify(broken, recipe, source=tiny_model, samples=4, hash_contents=False)
    assert {p.check for p in report.problems} == {"deep-error"}
    assert len(report.problems) == 4
    assert "differs from the BF16 source" in report.problems[0].message
