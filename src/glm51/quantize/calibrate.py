"""Max calibration of one unit of data, under natural top-k routing, in either mode.

resident: the whole model on the device, one forward per sample.
bounded:  one decoder layer at a time, materialized from the shards; every sample's hidden
          state goes through it and becomes the next layer's input. Same operations on the
          same inputs, so the same amaxes, bit for bit.
Both forward with use_cache=False (a cache under layerwise replay gives wrong scales).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glm51.calib.coverage import ExpertCounter, ExpertCounts
from glm51.checkpoint.folder import Checkpoint
from glm51.checkpoint.layout import moe_layers
from glm51.quantize.artifact import Artifact
from glm51.quantize.layers import decoder_inputs, load_into, release
from glm51.quantize.ranks import SINGLE, Ranks, fault_injection_hook, without_modelopt_sync
from glm51.quantize.targets import all_disabled

Progress = Callable[[str, int, int], None]  # (what, done, total)


def _quiet(_what: str, _done: int, _total: int) -> None:
    pass


class RouterCounter:
    """Our own forward hook on each router, feeding coverage's ExpertCounter: the top-k ids
    of the sample being run, at its offset in the unit's token stream. A replay of the same
    sample through a layer is not counted twice."""

    def __init__(self, layers: Sequence[int], experts: int) -> None:
        self.counter = ExpertCounter(layers, experts)
        self.offset = 0

    def at(self, offset: int) -> None:
        """The next forward is the sample starting at ``offset`` in the unit's stream."""
        self.offset = offset

    def hook(self, layer: int):
        def _count(_module, _inputs, output) -> None:
            self.counter.add(layer, output[2], self.offset)  # output: logits, weights, ids

        return _count

    def result(self, tokens: int) -> ExpertCounts:
        return self.counter.result(tokens)


def _router(layer_module):
    return layer_module.mlp.gate


def collect_amax(model) -> dict:
    """Amax of every enabled quantizer, by module name."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    out = {}
    for name, q in model.named_modules():
        if isinstance(q, TensorQuantizer) and q.is_enabled and q.amax is not None:
            out[name] = q.amax.detach().to("cpu").clone()
    return out


def _offsets(samples: Sequence[Sequence[int]]) -> list[int]:
    return np.concatenate([[0], np.cumsum([len(s) for s in samples])[:-1]]).astype(int).tolist()


def load_resident(model_dir: Path | str, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16)
    return model.to(device).eval()


def _quantizers(model):
    from modelopt.torch.quantization.nn import TensorQuantizer

    return [q for q in model.modules() if isinstance(q, TensorQuantizer) and q.is_enabled]


class Resident:
    """The whole model on the device, loaded once per run (`load_resident`) and converted by
    ModelOpt once. Each calibration unit starts from a clean state (every amax and calibrator
    reset) and runs ModelOpt's calibration, which is what a fresh `mtq.quantize` with that
    unit's forward loop does: the same amaxes, bit for bit (the tests compare it with the
    bounded mode, which materializes every layer afresh)."""

    def __init__(self, model_dir: Path | str, qcfg: dict[str, Any], device: str) -> None:
        import modelopt.torch.quantization as mtq
        import torch

        self.device = device
        self.qcfg = qcfg
        self.model = load_resident(model_dir, device)
        config = self.model.config.to_dict()
        self.layers = moe_layers(config)
        self.experts = int(config["n_routed_experts"])
        with torch.no_grad():
            mtq.quantize(self.model, qcfg, forward_loop=None)  # insert the quantizers once

    def _recalibrate(self, loop) -> None:
        import modelopt.torch.quantization as mtq
        import torch

        for q in _quantizers(self.model):
            q.reset_amax()  # drops the amax and the calibrator's running max
        with torch.no_grad():
            mtq.calibrate(self.model, self.qcfg["algorithm"], forward_loop=loop)

    def calibrate(
        self,
        samples: Sequence[Sequence[int]],
        *,
        unit: str,
        digest: str,
        progress: Progress = _quiet,
    ) -> Artifact:
        import torch

        model, device = self.model, self.device
        counter = RouterCounter(self.layers, self.experts)
        handles = [
            _router(model.model.layers[i]).register_forward_hook(counter.hook(i))
            for i in self.layers
        ]
        offsets = _offsets(samples)

        def loop(m) -> None:
            for s, ids in enumerate(samples):
                counter.at(offsets[s])
                m(input_ids=torch.tensor([list(ids)], device=device), use_cache=False)
                progress(unit, s + 1, len(samples))

        try:
            self._recalibrate(loop if samples else None)
        finally:
            for h in handles:
                h.remove()
        tokens = sum(len(s) for s in samples)
        return Artifact(unit, (digest,), collect_amax(model), counter.result(tokens))

    def for_export(self):
        """The model with weight amaxes only (from the weights themselves), ready for the
        merged amaxes: the state a fresh `mtq.quantize` without data leaves. Hands the model
        over: the exporter rewrites it in place."""
        self._recalibrate(None)
        model, self.model = self.model, None
        return model


def skeleton(ckpt: Checkpoint):
    """The model class on the meta device: names, classes and config, no memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(ckpt.dir))
    # The eager experts forward: ModelOpt's fused-experts quantizers hook F.linear, which the
    # grouped_mm implementation bypasses (ModelOpt forces this itself on a whole model).
    config._experts_implementation = "eager"
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()


def calibrate_bounded(
    model_dir: Path | str,
    samples: Sequence[Sequence[int]],
    qcfg: dict[str, Any],
    *,
    unit: str,
    digest: str,
    device: str = "cpu",
    progress: Progress = _quiet,
    ranks: Ranks = SINGLE,
) -> Artifact:
    """`samples`: the whole unit. Under torchrun (`ranks`) this rank runs its contiguous share
    at the share's offsets in the unit's stream, and every layer's amaxes are reduced by max
    over the ranks before the next layer; the counts are reduced at the end."""
    import modelopt.torch.quantization as mtq
    import torch
    from torch import nn

    ckpt = Checkpoint(model_dir)
    model = skeleton(ckpt)
    config = model.config
    layers = moe_layers(config.to_dict())
    counter = RouterCounter(layers, int(config.n_routed_experts))
    tokens, whole = sum(len(s) for s in samples), len(samples)
    mine = ranks.share(whole)
    offsets = _offsets(samples)[mine.start : mine.stop] if samples else []
    samples = samples[mine.start : mine.stop]
    n_layers = int(config.num_hidden_layers)

    embed = model.model.embed_tokens
    load_into(embed, ckpt, "model.embed_tokens.", device)
    rotary = type(model.model.rotary_emb)(config=config).to(device)
    with torch.no_grad():
        hidden = [embed(torch.tensor([list(s)], device=device)).cpu() for s in samples]
    embed.to(device="meta")  # not needed again: free it (1.9 GB at full scale)
    topk: list = [None] * len(samples)

    def layer_inputs(s: int):
        return decoder_inputs(config, rotary, hidden[s], device)

    amax: dict = {}
    for i in range(n_layers):
        layer = model.model.layers[i]
        load_into(layer, ckpt, f"model.layers.{i}.", device)
        # Wrapped under its full name so quantizer names and the recipe's patterns match.
        root = nn.Module()
        root.model = nn.Module()
        root.model.layers = nn.ModuleDict({str(i): layer})
        handle = _router(layer).register_forward_hook(counter.hook(i)) if i in layers else None

        def loop(_m, layer=layer, i=i) -> None:
            for s in range(len(samples)):
                counter.at(offsets[s])
                fault_injection_hook(ranks, unit, i)
                h, mask, pos, rope = layer_inputs(s)
                out, topk[s] = layer(
                    h,
                    attention_mask=mask,
                    position_ids=pos,
                    position_embeddings=rope,
                    past_key_values=None,
                    use_cache=False,
                    prev_topk_indices=topk[s],
                )
                hidden[s] = out.cpu()

        cfg = without_modelopt_sync(qcfg if i in layers else all_disabled(qcfg), ranks)
        # A rank whose share is empty still calibrates (a loop that runs nothing), so that
        # it measures what a process with data does: no weight-only calibration of its own.
        loop_or_none = loop if whole else None
        with torch.no_grad():
            mtq.quantize(root, cfg, forward_loop=loop_or_none)
        if handle:
            handle.remove()
        amax.update(ranks.max_amax(collect_amax(root)))
        model.model.layers[i] = nn.Identity()  # drop the materialized weights
        del layer, root
        release()
        progress(unit, i + 1, n_layers)
    return Artifact(unit, (digest,), amax, ranks.sum_counts(counter.result(tokens)))
