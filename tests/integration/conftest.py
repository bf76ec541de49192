"""Session fixtures: the tiny model is built once and quantized once per mode and plan; the
image under test and its labels (skipped, with the reason, without an engine or the image)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from glm51 import proc
from glm51.calib.rehearsal_data import write_jsonl
from tests.support.docker import IMAGE, image_missing


@dataclass(frozen=True)
class Runs:
    tiny: Path
    passes: dict  # pass name -> CalibSet
    resident: object  # Outcome: passes in chunks, resident mode
    again: object  # the same plan, fresh work dir
    resumed: object  # the same plan, the first run's work dir
    joint: object  # all data as one unit
    bounded: object  # passes in chunks, bounded-memory mode


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from transformers.utils import logging as hf_logging

    from glm51.quantize.tiny import build_tiny_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(scope="session")
def runs(tiny_model, tokenizer, tmp_path_factory, recipe) -> Runs:
    from glm51.calib.data import CalibSet, from_jsonl
    from glm51.quantize.pipeline import quantize, split

    tmp = tmp_path_factory.mktemp("quantize")
    passes = {
        "coding": from_jsonl(
            write_jsonl(tmp / "coding.jsonl", 6, 1), tokenizer, max_length=512, name="coding"
        ),
        "broad": from_jsonl(
            write_jsonl(tmp / "broad.jsonl", 3, 2), tokenizer, max_length=512, name="broad"
        ),
    }

    def run(name, plan, *, work, bounded=False):
        return quantize(
            tiny_model, tmp / name, plan, recipe.quantize, work_dir=tmp / work, bounded=bounded
        )

    chunked = split(passes, 2)
    joint = CalibSet("joint", [s for c in passes.values() for s in c.samples])
    return Runs(
        tiny=tiny_model,
        passes=passes,
        resident=run("resident", chunked, work="w1"),
        again=run("again", chunked, work="w2"),
        resumed=run("resumed", chunked, work="w1"),
        joint=run("joint", {"joint": [joint]}, work="w3"),
        bounded=run("bounded", chunked, work="w4", bounded=True),
    )


@pytest.fixture(scope="session")
def image() -> str:
    why = image_missing()
    if why:
        pytest.skip(why)
    return IMAGE


@pytest.fixture(scope="session")
def labels(image: str) -> dict[str, str]:
    out = proc.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image])
    return json.loads(out.stdout)
