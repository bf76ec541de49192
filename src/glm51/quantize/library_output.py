"""ModelOpt prints to stdout as it works ("Inserted N quantizers" once per conversion, the
attention class it registers for KV-cache quantization, bold escape codes). glm51 captures
that during a run and says once, in plain words, what it means for this checkpoint."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from glm51.checkpoint.folder import HF_QUANT, read_json

log = logging.getLogger("glm51.quantize.modelopt")
_INSERTED = re.compile(r"Inserted (\d+) quantizers")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """ModelOpt's prints go to a buffer (logged at -v); its transformers-version warning (the
    version sglang pins, tested by glm51) is silenced."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"transformers .* is not tested with current")
        try:
            with contextlib.redirect_stdout(buffer):
                yield buffer
        finally:
            for line in _ANSI.sub("", buffer.getvalue()).splitlines():
                log.info("%s", line)


def summary(printed: str, output: Path) -> list[str]:
    """What ModelOpt's prints and the export's quantization config say, once each."""
    lines = []
    inserted = sorted({int(n) for n in _INSERTED.findall(printed)})
    if inserted:
        conversions = len(_INSERTED.findall(printed))
        lines.append(
            f"ModelOpt: {'/'.join(map(str, inserted))} quantizer modules per model conversion "
            f"({conversions} conversion(s)); only the routed experts' are enabled"
        )
    kv = read_json(output / HF_QUANT).get("quantization", {}).get("kv_cache_quant_algo")
    if kv is None:
        lines.append(
            "KV cache: BF16, not quantized (hf_quant_config.json kv_cache_quant_algo: null; "
            "ModelOpt wraps the attention class for KV-cache quantization, but the recipe "
            "leaves its quantizers disabled)"
        )
    else:
        lines.append(f"warning: KV cache quantized as {kv} (the recipe expects BF16)")
    return lines
