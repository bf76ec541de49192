"""Calibration artifacts (quantize/artifact.py): merge by element-wise max, the file round
trip with its metadata, refusals. Small torch tensors only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glm51.calib.coverage import ExpertCounts
from glm51.errors import InputError

torch = pytest.importorskip("torch")

from glm51.quantize.artifact import FORMAT, META, Artifact, merge  # noqa: E402


def counts(tokens=2):
    return ExpertCounts((3, 4), np.array([[2, 0], [1, 1]]), np.array([[0, -1], [1, 0]]), tokens)


def artifact(unit="a", amax=None, **kw):
    amax = {"q": torch.tensor(1.5)} if amax is None else amax
    return Artifact(unit, (f"d-{unit}",), amax, counts(), **kw)


def test_merge_keeps_a_quantizer_only_one_part_has_and_names_the_unit():
    a = artifact("a", {"q": torch.tensor(1.0), "only_a": torch.tensor([5.0, 1.0])})
    b = artifact("b", {"q": torch.tensor(3.0), "only_b": torch.tensor(2.0)})
    m = merge([a, b], unit="coding")
    assert m.unit == "coding" and m.digests == ("d-a", "d-b")
    assert sorted(m.amax) == ["only_a", "only_b", "q"]
    assert torch.equal(m.amax["only_a"], torch.tensor([5.0, 1.0]))
    assert torch.equal(m.amax["q"], torch.tensor(3.0))
    assert m.counts.tokens == 4 and m.counts.counts.tolist() == [[4, 0], [2, 2]]
    assert merge([a]).unit == "merged"


def test_merge_of_nothing_is_refused():
    with pytest.raises(InputError, match=r"^no calibration artifacts to merge$"):
        merge([])


def test_save_and_load_keep_every_field(tmp_path):
    a = artifact(
        "coding.2of4",
        {"w": torch.tensor([1.0, 2.0])},
        device="cuda:0",
        device_name="NVIDIA RTX PRO 6000",
    )
    path = a.save(tmp_path / "deep" / "er" / "a.safetensors")
    assert path == tmp_path / "deep" / "er" / "a.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.safetensors"]  # no .tmp left
    back = Artifact.load(path)
    assert (back.unit, back.digests) == ("coding.2of4", ("d-coding.2of4",))
    assert (back.device, back.device_name) == ("cuda:0", "NVIDIA RTX PRO 6000")
    assert sorted(back.amax) == ["w"] and torch.equal(back.amax["w"], torch.tensor([1.0, 2.0]))
    assert back.counts.layers == (3, 4) and back.counts.tokens == 2
    assert back.counts.counts.tolist() == [[2, 0], [1, 1]]
    assert back.counts.first_seen.tolist() == [[0, -1], [1, 0]]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert list(meta) == [META]  # one key: safetensors orders several keys at random
    assert json.loads(meta[META]) == {
        "format": FORMAT,
        "unit": "coding.2of4",
        "digests": json.dumps(["d-coding.2of4"]),
        "tokens": "2",
        "device": "cuda:0",
        "device_name": "NVIDIA RTX PRO 6000",
    }


def test_the_same_artifact_saves_to_the_same_bytes(tmp_path):
    """What a 2-rank run is compared with a 1-rank run on: the file, byte for byte."""
    a = artifact("coding", {"w": torch.tensor([1.0, 2.0])}, device="cpu")
    first = a.save(tmp_path / "0.safetensors").read_bytes()
    for i in range(1, 6):
        assert a.save(tmp_path / f"{i}.safetensors").read_bytes() == first


def test_an_artifact_with_its_metadata_in_several_keys_still_loads(tmp_path):
    """Artifacts an earlier glm51 wrote (one metadata key per field) are reused on resume."""
    from safetensors.torch import load_file, save_file

    path = artifact("coding", {"w": torch.tensor([3.0])}).save(tmp_path / "a.safetensors")
    tensors = load_file(str(path))
    old = {"format": FORMAT, "unit": "coding", "digests": json.dumps(["d-coding"]), "tokens": "2"}
    save_file(tensors, str(path), metadata=old)
    back = Artifact.load(path)
    assert (back.unit, back.digests, back.counts.tokens) == ("coding", ("d-coding",), 2)
    assert torch.equal(back.amax["w"], torch.tensor([3.0]))


def test_an_unknown_device_is_not_written(tmp_path):
    path = artifact().save(tmp_path / "a.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert set(json.loads(f.metadata()[META])) == {"format", "unit", "digests", "tokens"}
    back = Artifact.load(path)
    assert back.device is None and back.device_name is None


def test_another_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "x.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InputError) as info:
        Artifact.load(tmp_path / "x.safetensors")
    assert (
        str(info.value) == f"{tmp_path / 'x.safetensors'}: not a calibration artifact (format pt)"
    )
    save_file({"x": torch.zeros(1)}, str(tmp_path / "y.safetensors"))
    with pytest.raises(InputError, match=r"not a calibration artifact \(format None\)"):
        Artifact.load(tmp_path / "y.safetensors")
