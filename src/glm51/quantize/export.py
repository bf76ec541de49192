"""Export once, from merged amaxes, with ModelOpt's HF exporter.

resident: the whole model, one `export_hf_checkpoint` call.
bounded:  one decoder layer at a time: a one-layer model of the same class carries layer i,
          goes through the same exporter, and its tensors are renamed back to layer i.
Then, in both modes: the MTP/NextN layer copied through in BF16, the exclude list from the
recipe and the config (in `hf_quant_config.json` and `config.json`, as SGLang reads them),
tokenizer, chat template and generation config copied. Written to a temporary folder that
is renamed into place at the end: the output is whole or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from glm51.checkpoint import manifest
from glm51.checkpoint.folder import Checkpoint
from glm51.checkpoint.layout import mtp_layers
from glm51.checkpoint.safetensors import read_header
from glm51.errors import GateFailed, InputError
from glm51.outputs import (
    check_output_folder,
    copy_file,
    os_errors,
    publish_folder,
    save_tensors,
    staging_folder,
    write_text,
)
from glm51.quantize.calibrate import Resident
from glm51.quantize.layers import load_into, release
from glm51.quantize.nvfp4 import correctly_rounded_scales
from glm51.quantize.ranks import SINGLE, Ranks, without_modelopt_sync
from glm51.quantize.targets import all_disabled, bf16_patterns, modelopt_config

# Everything a server needs beside the weights; copied verbatim when present.
SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "added_tokens.json",
    "generation_config.json",
)

Progress = Callable[[str, int, int], None]


def apply_amax(model, amax: dict, rename: Callable[[str], str] = lambda n: n) -> None:
    """Set every enabled quantizer's amax from the merged artifact; check the input scales."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    missing = []
    for name, q in model.named_modules():
        if not (isinstance(q, TensorQuantizer) and q.is_enabled):
            continue
        value = amax.get(rename(name))
        if value is not None:
            q.amax = value.to(q.amax.device if q.amax is not None else "cpu")
        bad = q.amax is None or not bool((q.amax.float().isfinite() & (q.amax > 0)).all())
        if name.endswith("input_quantizer") and bad:
            missing.append(rename(name))
    if missing:
        raise GateFailed(
            f"{len(missing)} quantized projections have no finite positive input_scale "
            f"(calibration never reached them): {', '.join(missing[:20])}"
        )


def _export_resident(
    ckpt: Checkpoint, amax: dict, qcfg: dict, tmp: Path, device: str, resident: Resident | None
) -> None:
    from modelopt.torch.export import export_hf_checkpoint

    if resident is None:  # an export on its own: load the model for it
        resident = Resident(ckpt.dir, qcfg, device)
    model = resident.for_export()  # weight amaxes from the weights; inputs come from amax
    apply_amax(model, amax)
    export_hf_checkpoint(model, export_dir=str(tmp))
    del model
    release()


def _one_layer_model(ckpt: Checkpoint, i: int, device: str):
    """The model class with only layer i (as layer 0) and a tiny zeroed vocabulary."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(ckpt.dir))
    for key in ("mlp_layer_types", "indexer_types", "layer_types"):
        if getattr(config, key, None):
            setattr(config, key, [getattr(config, key)[i]])
    if getattr(config, "indexer_types", None) == ["shared"]:
        raise InputError(
            f"{ckpt.dir}: layer {i} reuses another layer's DSA indexer; the bounded-memory "
            "export needs layers with their own indexer (use the resident mode)"
        )
    config.num_hidden_layers = 1
    config.num_nextn_predict_layers = 0
    config.vocab_size = 16  # the exporter runs a 2-token dummy forward; nothing else reads it
    config._experts_implementation = "eager"
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    load_into(model.model.layers[0], ckpt, f"model.layers.{i}.", device)
    for name in ("embed_tokens", "norm"):
        getattr(model.model, name).to_empty(device=device)
    model.lm_head.to_empty(device=device)
    with torch.no_grad():
        model.model.embed_tokens.weight.zero_()
        model.model.norm.weight.fill_(1)
        model.lm_head.weight.zero_()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config).to(device)
    # This one-layer model is this rank's own: under torch.distributed, transformers'
    # save_pretrained writes only on rank 0 unless the model says otherwise.
    model.should_save_on_this_rank = lambda is_main_process: is_main_process
    return model, config.to_dict()


def _export_bounded(
    ckpt: Checkpoint,
    amax: dict,
    recipe,
    tmp: Path,
    device: str,
    progress: Progress,
    ranks: Ranks = SINGLE,
) -> None:
    """Under torchrun each rank packs and writes its own layers (`Ranks.owns_layer`) into the
    one staging folder; rank 0 then writes the rest and the config."""
    import modelopt.torch.quantization as mtq
    import torch
    from modelopt.torch.export import export_hf_checkpoint
    from safetensors.torch import load_file

    n = int(ckpt.config["num_hidden_layers"])
    mine = [i for i in range(n) if ranks.owns_layer(i)]
    quant_config = None  # the first MoE layer's, as the exporter writes it
    for done, i in enumerate(mine, 1):
        model, mini = _one_layer_model(ckpt, i, device)
        qcfg = modelopt_config(recipe, mini)
        if mini["mlp_layer_types"] == ["dense"]:
            qcfg = all_disabled(qcfg)
        qcfg = without_modelopt_sync(qcfg, ranks)  # each rank has other layers than the rest
        with torch.no_grad():
            mtq.quantize(model, qcfg, forward_loop=None)
        mine, real = "model.layers.0.", f"model.layers.{i}."
        apply_amax(model, amax, lambda name, a=mine, b=real: name.replace(a, b, 1))
        part = tmp / f".layer{i}"
        export_hf_checkpoint(model, export_dir=str(part))
        if quant_config is None and mini["mlp_layer_types"] != ["dense"]:
            exported = json.loads((part / "config.json").read_text())["quantization_config"]
            quant_config = (i, exported)
        tensors = {}
        for f in sorted(part.glob("*.safetensors")):
            tensors.update(load_file(str(f)))
        layer = {real + k.removeprefix(mine): v for k, v in tensors.items() if k.startswith(mine)}
        save_tensors(layer, tmp / f"layer-{i:05d}.safetensors", {"format": "pt"})
        shutil.rmtree(part)
        del model, tensors, layer
        release()
        progress("export", done, len(mine))
    # Every rank's layers are written (or a rank failed: the gather raises on every rank).
    firsts = [q for q in ranks.all_gather(quant_config, "gathering the exported layers") if q]
    if not ranks.leader:
        return
    # Embeddings, final norm, lm_head: not quantized, copied through.
    rest = ckpt.read(k for k in ckpt.weight_map if not k.startswith("model.layers."))
    save_tensors(rest, tmp / "model-rest.safetensors", {"format": "pt"})
    if not firsts:
        raise InputError(f"{ckpt.dir}: no decoder layer has routed experts to quantize")
    _write_config(tmp, ckpt, min(firsts, key=lambda q: q[0])[1])


def _copy_mtp(ckpt: Checkpoint, tmp: Path) -> dict:
    names = [k for i in mtp_layers(ckpt.config) for k in ckpt.keys(f"model.layers.{i}.")]
    tensors = ckpt.read(names)  # BF16, untouched: transformers drops these on load
    if tensors:
        save_tensors(tensors, tmp / "model-mtp.safetensors", {"format": "pt"})
    return tensors


def _rename_shards_and_index(tmp: Path) -> None:
    """Canonical shard names and a model.safetensors.index.json covering every shard."""
    files = sorted(p.name for p in tmp.glob("*.safetensors"))
    renamed = {
        name: f"model-{k:05d}-of-{len(files):05d}.safetensors" for k, name in enumerate(files, 1)
    }
    for name, new in renamed.items():  # via hidden names: a new name may be an old one
        os.replace(tmp / name, tmp / f".{new}")
    weight_map, total = {}, 0
    for new in renamed.values():
        os.replace(tmp / f".{new}", tmp / new)
        for key, info in read_header(tmp / new).tensors.items():
            weight_map[key] = new
            total += info.end - info.begin
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    write_text(tmp / "model.safetensors.index.json", json.dumps(index, indent=2) + "\n")


def _write_config(tmp: Path, ckpt: Checkpoint, quant_config: dict) -> None:
    """The source config (not the in-memory one) plus the exporter's quantization_config."""
    config = dict(ckpt.config)
    config["quantization_config"] = quant_config
    write_text(tmp / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")


def _write_quant_configs(
    tmp: Path, ckpt: Checkpoint, keep_bf16: tuple[str, ...], provenance: dict | None = None
) -> None:
    """`hf_quant_config.json` (nested) and `config.json`'s `quantization_config` (flat, with
    `ignore`): SGLang's ModelOpt loader reads either; both carry the same exclude list.
    `hf_quant_config.json` also carries where the scales were measured (key "glm51"), which
    SGLang ignores."""
    excludes = bf16_patterns(keep_bf16, ckpt.config)
    config = json.loads((tmp / "config.json").read_text())
    qc = config["quantization_config"]
    qc["ignore"] = excludes
    qc["kv_cache_quant_algo"] = None
    config["quantization_config"] = dict(sorted(qc.items()))
    write_text(tmp / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    hf = {
        "producer": qc.get("producer", {"name": "modelopt"}),
        "quantization": {
            "quant_algo": qc["quant_algo"],
            "kv_cache_quant_algo": None,
            "group_size": qc["config_groups"]["group_0"]["weights"]["group_size"],
            "exclude_modules": excludes,
        },
    }
    if provenance:
        hf["glm51"] = provenance
    write_text(tmp / "hf_quant_config.json", json.dumps(hf, indent=4) + "\n")


def export(
    model_dir: Path | str,
    amax: dict,
    recipe,
    qcfg: dict,
    output: Path | str,
    *,
    bounded: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    progress: Progress = lambda *_: None,
    resident: Resident | None = None,
    provenance: dict | None = None,
    ranks: Ranks = SINGLE,
) -> Path:
    """Write the NVFP4 checkpoint to `output` (atomically); returns it.

    resident: the run's model, already on the device (resident mode): exported as it is,
    not loaded again. provenance: written to `hf_quant_config.json` under "glm51".
    ranks (bounded mode under torchrun): the layers spread over the ranks; rank 0 makes the
    staging folder, writes the index, configs and manifest, and swaps the folder in."""
    ckpt = Checkpoint(model_dir)
    output = Path(output)
    check_output_folder(
        output,
        overwrite=overwrite,
        option="--output",
        command="quantize",
        inputs={"--model": ckpt.dir},
    )
    tmp = ranks.from_leader(lambda: staging_folder(output, "quantize"))
    try:
        with os_errors(tmp), correctly_rounded_scales():  # the same weight bytes on every device
            if bounded:
                run_on = ranks.device if ranks.world > 1 else device
                _export_bounded(ckpt, amax, recipe, tmp, run_on, progress, ranks)
                if not ranks.leader:  # rank 0 finishes the folder and swaps it in
                    ranks.barrier("waiting for rank 0 to swap the checkpoint in")
                    return output
            else:
                _export_resident(ckpt, amax, qcfg, tmp, device, resident)
            if not bounded:
                exported = json.loads((tmp / "config.json").read_text())
                _write_config(tmp, ckpt, exported["quantization_config"])
            _copy_mtp(ckpt, tmp)
            (tmp / "model.safetensors.index.json").unlink(missing_ok=True)
            _rename_shards_and_index(tmp)
            _write_quant_configs(tmp, ckpt, recipe.keep_bf16, provenance)
            for name in SIDE_FILES:
                if (ckpt.dir / name).is_file():
                    copy_file(ckpt.dir / name, tmp / name)
            # glm51-manifest.json: what `glm51 verify` and `glm51 publish` check the folder
            # against.
            headers = {p.name: read_header(p) for p in tmp.glob("*.safetensors")}
            manifest.write(manifest.build(tmp, headers, recipe=recipe, timestamp=False), tmp)
    except BaseException:
        if ranks.leader:  # rank 0 owns the staging folder
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Outside the cleanup: a refused swap keeps the finished export in `tmp` (it says where).
    out = publish_folder(tmp, output)
    ranks.barrier("waiting for rank 0 to swap the checkpoint in")
    return out
