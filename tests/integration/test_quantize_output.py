"""What `glm51 quantize` prints when its output is a log, not a terminal: its own summary of
what ModelOpt did, once, with no escape codes and no ModelOpt chatter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from glm51.calib.rehearsal_data import write_jsonl

GLM51 = [sys.executable, "-c", "import sys; from glm51.cli import main; main()"]


def test_quantize_says_the_kv_cache_stays_bf16_without_modelopts_noise(tiny_model, tmp_path):
    calib = write_jsonl(tmp_path / "calib.jsonl", 6, 0)
    out = tmp_path / "nvfp4"
    argv = [
        "quantize",
        "--model",
        str(tiny_model),
        "--output",
        str(out),
        "--calib-file",
        str(calib),
    ]
    env = {**os.environ, "TERM": "dumb"}
    env.pop("GLM51_DEBUG", None)
    done = subprocess.run([*GLM51, *argv], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "\x1b[" not in said  # not a terminal: no escape codes
    for noise in ("Inserted", "Registered", "Detected fused MoE", "is not tested with"):
        assert noise not in said, noise
    assert said.count("KV cache: BF16, not quantized") == 1
    assert said.count("quantizer modules per model conversion") == 1
    # ...and it is true: the export declares no KV-cache quantization.
    hf_quant = json.loads((out / "hf_quant_config.json").read_text())
    assert hf_quant["quantization"]["kv_cache_quant_algo"] is None
