"""`glm51 verify`: a checkpoint's integrity and layout, checked before it is served or published.

Three parts, each naming the file or tensor and what was expected:

- **structure**: the index and the shards agree (every shard named is there and readable,
  every index entry is in its shard, every shard on disk is referenced, no tensor twice);
- **layout against the recipe**: which modules are NVFP4 and which stay BF16, every NVFP4
  projection has its four tensors with the right dtypes and shapes, the scales are finite
  and positive, both exclude lists (config.json and hf_quant_config.json) agree with each
  other, with the recipe and with the tensors (SGLang's matching rules);
- **integrity**: sizes and sha256 against glm51-manifest.json (and per-tensor digests to
  name what changed); ``write=True`` records the manifest when everything else passes.

``source=`` adds the deep check (torch): a sample of NVFP4 experts is dequantized and
compared with the BF16 source. Nothing in the folder is modified, except the manifest that
``write=True`` adds.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import math
import re
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glm51.checkpoint import dequant
from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import ShardError, ShardHeader, read_header
from glm51.errors import InputError
from glm51.recipe.schema import Recipe

INDEX = "model.safetensors.index.json"
HF_QUANT = "hf_quant_config.json"
NVFP4_PARTS = {  # suffix -> dtype
    "weight": "U8",
    "weight_scale": "F8_E4M3",
    "weight_scale_2": "F32",
    "input_scale": "F32",
}
_SHOWN = 5
# E4M3 (fn) bytes that are a valid block scale: +0 and every positive finite value (0x01-0x7e).
# 0x7f / 0xff are NaN; 0x80-0xfe negative (0x80 is -0, harmless but never written).
_OK_E4M3 = bytes(range(0x00, 0x7F)) + b"\x80"
_EXPERT = re.compile(r"^(model\.layers\.(\d+)\.mlp\.experts\.(\d+))\.(gate|up|down)_proj$")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    check: str  # a short id: shard-missing, index-entry, nvfp4-incomplete, scale-invalid, ...
    where: str  # the file, or the tensor/module
    message: str  # what is wrong and what was expected

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class DeepResult:
    module: str
    rel_error: float  # ||dequant - source|| / ||source||
    max_abs_error: float
    passed: bool


@dataclass
class Report:
    folder: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shards: int = 0
    tensors: int = 0
    nvfp4_modules: int = 0
    bf16_modules: int = 0
    hashed_bytes: int = 0
    hash_seconds: float = 0.0
    manifest: str = "absent"  # absent, matched, written, mismatched, not-checked
    deep: list[DeepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, where: str, message: str) -> None:
        self.problems.append(Problem(check, where, message))

    def to_json(self) -> str:
        data = asdict(self)
        data["folder"] = str(self.folder)
        data["ok"] = self.ok
        for d in data["deep"]:  # strict JSON: a non-finite error becomes null
            for key in ("rel_error", "max_abs_error"):
                d[key] = d[key] if math.isfinite(d[key]) else None
        return json.dumps(data, indent=2) + "\n"


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace(".", r"\.").replace("*", ".*"))


def excluded_by(module: str, patterns: tuple[str, ...]) -> str | None:
    """The first exclude pattern that names ``module`` the way SGLang's ModelOpt loader
    matches them (glob as regex, full match on the module or one of its dotted parts)."""
    parts = module.split(".")
    for p in patterns:
        rx = _glob_regex(p)
        if rx.fullmatch(module) or any(rx.fullmatch(part) for part in parts):
            return p
    return None


# ------------------------------------------------------------------------------ structure


def _read_json(path: Path, report: Report, check: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.add(check, path.name, "missing")
    except (OSError, ValueError) as exc:
        report.add(check, path.name, f"not readable JSON ({exc})")
    return None


def _structure(folder: Path, report: Report) -> tuple[dict[str, str], dict[str, ShardHeader]]:
    """Index against shards; returns the weight map and the readable shards' headers."""
    index = _read_json(folder / INDEX, report, "index") if (folder / INDEX).exists() else None
    on_disk = sorted(p.name for p in folder.glob("*.safetensors"))
    if index is None and not (folder / INDEX).exists():
        if on_disk == ["model.safetensors"]:
            weight_map = None  # one shard, no index: its header is the map
        else:
            report.add("index", INDEX, f"missing (the folder has {len(on_disk)} shard(s))")
            return {}, {}
    elif not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        if index is not None:
            report.add("index", INDEX, "has no weight_map object")
        return {}, {}
    else:
        weight_map = index["weight_map"]

    headers: dict[str, ShardHeader] = {}
    if weight_map is None:
        try:
            headers["model.safetensors"] = read_header(folder / "model.safetensors")
        except ShardError as exc:
            report.add(f"shard-{exc.kind}", "model.safetensors", f"truncated or corrupt: {exc}")
            return {}, {}
        weight_map = dict.fromkeys(headers["model.safetensors"].tensors, "model.safetensors")
        report.shards = 1
        report.tensors = len(weight_map)
        return weight_map, headers

    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    report.shards = len(by_shard)
    report.tensors = len(weight_map)
    for shard in sorted(by_shard):
        names = sorted(by_shard[shard])
        if not (folder / shard).is_file():
            report.add(
                "shard-missing",
                shard,
                f"missing: {INDEX} maps {len(names)} tensor(s) to it ({_listed(names)})",
            )
            continue
        try:
            header = read_header(folder / shard)
        except ShardError as exc:
            what = "header" if exc.kind == "header" else "data (the file is cut short)"
            report.add(f"shard-{exc.kind}", shard, f"truncated or corrupt {what}: {exc}")
            continue
        headers[shard] = header
        for name in names:
            if name not in header.tensors:
                report.add(
                    "index-entry",
                    name,
                    f"{INDEX} maps it to {shard}, which has no such tensor",
                )
        extra = sorted(set(header.tensors) - set(weight_map))
        if extra:
            report.add(
                "tensor-unindexed",
                shard,
                f"holds {len(extra)} tensor(s) that {INDEX} does not list: {_listed(extra)}",
            )
        moved = sorted(n for n in header.tensors if n in weight_map and weight_map[n] != shard)
        if moved:
            report.add(
                "tensor-duplicate",
                shard,
                f"holds {len(moved)} tensor(s) that {INDEX} maps to another shard: "
                f"{_listed(moved)}",
            )
    for shard in sorted(set(on_disk) - set(by_shard)):
        report.add("shard-unreferenced", shard, f"is not referenced by {INDEX}")
    return weight_map, headers


# --------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class QuantConfigs:
    config_exclude: tuple[str, ...] | None  # config.json quantization_config's list
    hf_exclude: tuple[str, ...] | None  # hf_quant_config.json's list

    @property
    def exclude(self) -> tuple[str, ...]:
        # SGLang reads config.json's copy first.
        return self.config_exclude if self.config_exclude is not None else (self.hf_exclude or ())


def _quant_configs(folder: Path, config: dict, recipe: Recipe, report: Report) -> QuantConfigs:
    want = recipe.quantize
    qc = config.get("quantization_config")
    config_exclude = None
    if isinstance(qc, dict):
        nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
        flat = qc if "quant_algo" in qc else nested
        lst = flat.get("ignore", flat.get("exclude_modules", flat.get("modules_to_not_convert")))
        config_exclude = tuple(lst or ())
        if flat.get("quant_algo") != want.algorithm:
            report.add(
                "quant-config",
                "config.json",
                f"quantization_config.quant_algo is {flat.get('quant_algo')!r}, "
                f"the recipe says {want.algorithm!r}",
            )
        if qc.get("quant_method", "modelopt") != "modelopt":
            report.add(
                "quant-config",
                "config.json",
                f"quantization_config.quant_method is {qc.get('quant_method')!r}, not 'modelopt'",
            )
    hf_exclude = None
    if (folder / HF_QUANT).is_file():
        data = _read_json(folder / HF_QUANT, report, "quant-config")
        section = (data or {}).get("quantization") if isinstance(data, dict) else None
        if isinstance(section, dict):
            hf_exclude = tuple(section.get("exclude_modules") or ())
            if section.get("quant_algo") != want.algorithm:
                report.add(
                    "quant-config",
                    HF_QUANT,
                    f"quantization.quant_algo is {section.get('quant_algo')!r}, "
                    f"the recipe says {want.algorithm!r}",
                )
            if section.get("group_size") != want.group_size:
                report.add(
                    "quant-config",
                    HF_QUANT,
                    f"quantization.group_size is {section.get('group_size')!r}, "
                    f"the recipe says {want.group_size}",
                )
        elif data is not None:
            report.add("quant-config", HF_QUANT, "has no 'quantization' object")
    if config_exclude is None and hf_exclude is None:
        report.add(
            "quant-config",
            "config.json",
            f"no quantization config (neither config.json quantization_config nor {HF_QUANT}): "
            "not an NVFP4 export",
        )
    if (
        config_exclude is not None
        and hf_exclude is not None
        and set(config_exclude) != set(hf_exclude)
    ):
        only_c = sorted(set(config_exclude) - set(hf_exclude))
        only_h = sorted(set(hf_exclude) - set(config_exclude))
        report.add(
            "exclude-differs",
            HF_QUANT,
            f"exclude_modules differs from config.json quantization_config.ignore "
            f"(only in config.json: {only_c or 'none'}; only in {HF_QUANT}: {only_h or 'none'})",
        )
    found = QuantConfigs(config_exclude, hf_exclude)
    missing = [p for p in want.keep_bf16 if p not in found.exclude]
    if missing and (config_exclude is not None or hf_exclude is not None):
        report.add(
            "exclude-recipe",
            "config.json" if config_exclude is not None else HF_QUANT,
            f"the exclude list lacks the recipe's keep_bf16 pattern(s) {missing}",
        )
    return found


def _modules(headers: Mapping[str, ShardHeader]) -> dict[str, dict[str, tuple[str, Any]]]:
    """module -> {suffix: (shard, TensorInfo)} for weights and the NVFP4 parts."""
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for shard, header in headers.items():
        for name, info in header.tensors.items():
            module, _, suffix = name.rpartition(".")
            if suffix in NVFP4_PARTS and module:
                out.setdefault(module, {})[suffix] = (shard, info)
    return out


def _check_nvfp4(
    module: str, parts: dict[str, tuple[str, Any]], group: int, config: dict, report: Report
) -> bool:
    """The four tensors, dtypes and shapes; returns whether the module is well-formed."""
    ok = True
    absent = [s for s in NVFP4_PARTS if s not in parts]
    if absent:
        report.add(
            "nvfp4-incomplete",
            module,
            f"NVFP4 projection without {', '.join(absent)} (expected weight U8, weight_scale "
            "F8_E4M3, weight_scale_2 F32 [], input_scale F32 [])",
        )
        ok = False
    for suffix, (_, info) in sorted(parts.items()):
        if info.dtype != NVFP4_PARTS[suffix]:
            report.add(
                "nvfp4-dtype",
                f"{module}.{suffix}",
                f"is {info.dtype}, an NVFP4 projection's {suffix} is {NVFP4_PARTS[suffix]}",
            )
            ok = False
    for suffix in ("weight_scale_2", "input_scale"):
        if suffix in parts and parts[suffix][1].shape not in ((), (1,)):
            report.add(
                "nvfp4-shape",
                f"{module}.{suffix}",
                f"has shape {list(parts[suffix][1].shape)}, expected a scalar []",
            )
            ok = False
    if "weight" in parts and "weight_scale" in parts:
        w, s = parts["weight"][1].shape, parts["weight_scale"][1].shape
        if len(w) != 2 or len(s) != 2 or s != (w[0], w[1] * 2 // group):
            want = f"[{w[0]}, {w[1] * 2 // group}]" if len(w) == 2 else "2-D"
            report.add(
                "nvfp4-shape",
                f"{module}.weight_scale",
                f"has shape {list(s)}; weight {list(w)} packs {w[1] * 2 if len(w) == 2 else '?'} "
                f"inputs per row, so one scale per {group} is {want}",
            )
            ok = False
        elif m := _EXPERT.match(module):
            hidden, inter = config.get("hidden_size"), config.get("moe_intermediate_size")
            expect = (inter, hidden) if m[4] in ("gate", "up") else (hidden, inter)
            if None not in expect and (w[0], w[1] * 2) != expect:
                report.add(
                    "nvfp4-shape",
                    f"{module}.weight",
                    f"unpacks to [{w[0]}, {w[1] * 2}], config.json says {list(expect)} "
                    f"(hidden_size {hidden}, moe_intermediate_size {inter})",
                )
                ok = False
    return ok


def _valid(scale: float) -> bool:
    return math.isfinite(scale) and scale > 0


def _check_scales(
    folder: Path, scalars: list[tuple[str, str, Any]], blocks, report: Report
) -> dict[str, float]:
    """Scalar scales finite and > 0; block scales (E4M3) finite and not negative. Returns
    the scalar scales' values."""
    values: dict[str, float] = {}
    by_shard: dict[str, list[tuple[str, Any, str]]] = {}
    for shard, name, info in scalars:
        by_shard.setdefault(shard, []).append((name, info, "scalar"))
    for shard, name, info in blocks:
        by_shard.setdefault(shard, []).append((name, info, "block"))
    headers_len: dict[str, int] = {}
    for shard, items in sorted(by_shard.items()):
        path = folder / shard
        with path.open("rb") as fh:
            (headers_len[shard],) = struct.unpack("<Q", fh.read(8))
            base = 8 + headers_len[shard]
            for name, info, kind in sorted(items, key=lambda x: x[1].begin):
                fh.seek(base + info.begin)
                raw = fh.read(info.end - info.begin)
                if kind == "scalar":
                    if len(raw) != 4:
                        report.add("scale-invalid", name, f"holds {len(raw)} bytes, a F32 scalar 4")
                        continue
                    (value,) = struct.unpack("<f", raw)
                    values[name] = value
                    if not math.isfinite(value) or value <= 0:
                        report.add(
                            "scale-invalid",
                            name,
                            f"is {value!r}: a scale must be finite and positive",
                        )
                else:
                    bad = raw.translate(None, _OK_E4M3)
                    if bad:
                        nan = bad.count(0x7F) + bad.count(0xFF)
                        report.add(
                            "scale-invalid",
                            name,
                            f"has {nan} NaN and {len(bad) - nan} negative E4M3 block scale(s): "
                            "block scales must be finite and not negative",
                        )
    return values


def _layout(folder: Path, config: dict, headers, recipe: Recipe, report: Report) -> None:
    quant = _quant_configs(folder, config, recipe, report)
    exclude = quant.exclude
    group = recipe.quantize.group_size
    modules = _modules(headers)
    scalars, blocks = [], []
    nvfp4_wrongly_excluded, bf16_not_excluded, outside_recipe = [], [], []
    for module, parts in sorted(modules.items()):
        is_fp4 = any(s in parts for s in ("weight_scale", "weight_scale_2", "input_scale")) or (
            "weight" in parts and parts["weight"][1].dtype == "U8"
        )
        if is_fp4:
            report.nvfp4_modules += 1
            _check_nvfp4(module, parts, group, config, report)
            for suffix in ("weight_scale_2", "input_scale"):
                if suffix in parts and parts[suffix][1].dtype == "F32":
                    scalars.append((parts[suffix][0], f"{module}.{suffix}", parts[suffix][1]))
            if "weight_scale" in parts and parts["weight_scale"][1].dtype == "F8_E4M3":
                blocks.append(
                    (parts["weight_scale"][0], f"{module}.weight_scale", parts["weight_scale"][1])
                )
            if (pattern := excluded_by(module, exclude)) is not None:
                nvfp4_wrongly_excluded.append((module, pattern))
            if not any(fnmatch.fnmatch(module, p) for p in recipe.quantize.quantize):
                outside_recipe.append(module)
        elif "weight" in parts and len(parts["weight"][1].shape) == 2:
            report.bf16_modules += 1
            if excluded_by(module, exclude) is None:
                bf16_not_excluded.append(module)
    if nvfp4_wrongly_excluded:
        names = [f"{m} (by {p!r})" for m, p in nvfp4_wrongly_excluded]
        report.add(
            "exclude-disagrees",
            "exclude list",
            f"{len(names)} NVFP4 module(s) are named by the exclude list, so SGLang would load "
            f"them as BF16: {_listed(names)}",
        )
    if bf16_not_excluded:
        report.add(
            "exclude-disagrees",
            "exclude list",
            f"{len(bf16_not_excluded)} BF16 module(s) are not named by the exclude list, so "
            f"SGLang would expect NVFP4 tensors for them: {_listed(bf16_not_excluded)}",
        )
    if outside_recipe:
        report.add(
            "layout-recipe",
            "recipe",
            f"{len(outside_recipe)} NVFP4 module(s) match none of the recipe's quantize patterns "
            f"{list(recipe.quantize.quantize)}: {_listed(outside_recipe)}",
        )
    if report.nvfp4_modules == 0 and not report.problems:
        report.add("layout-recipe", "checkpoint", "has no NVFP4 module: not an NVFP4 export")
    values = _check_scales(folder, scalars, blocks, report)
    # SGLang fuses an expert's gate and up projections into one w13 with one global scale.
    for name, gate in sorted(values.items()):
        if name.endswith(".gate_proj.weight_scale_2"):
            up = values.get(name.replace(".gate_proj.", ".up_proj."))
            if up is not None and up != gate and _valid(gate) and _valid(up):
                report.add(
                    "nvfp4-w13-scale",
                    name.rsplit(".", 2)[0],
                    f"gate_proj.weight_scale_2 is {gate!r} but up_proj.weight_scale_2 is "
                    f"{up!r}: SGLang fuses them into w13 with one scale, so they must be equal",
                )


# ------------------------------------------------------------------------------ integrity


def _integrity(
    folder: Path,
    headers: Mapping[str, ShardHeader],
    report: Report,
    *,
    write: bool,
    recipe: Recipe,
    threads: int | None,
    progress: Progress,
) -> None:
    path = folder / mf.MANIFEST
    if not path.exists():
        if not write:
            report.manifest = "absent"
            report.notes.append(
                f"no {mf.MANIFEST}: the contents were not checked against recorded digests "
                "(`glm51 verify --write` records one once everything else passes)"
            )
            return
        if report.problems:
            report.manifest = "not-written"
            report.notes.append(f"{mf.MANIFEST} not written: the checks above failed")
            return
        start = time.monotonic()
        built = mf.build(folder, headers, recipe=recipe, threads=threads, progress=progress)
        report.hash_seconds = time.monotonic() - start
        report.hashed_bytes = sum(e.size for e in built.all_files().values())
        mf.write(built, folder)
        report.manifest = "written"
        return

    manifest = mf.read(path)
    before = len(report.problems)
    for m in mf.compare_headers(manifest, headers):
        report.add("manifest-tensor", m.where, m.message)
    present = mf.recorded_files(folder)
    for name in sorted(set(manifest.all_files()) - set(present)):
        if not (folder / name).exists():
            report.add("manifest-file", name, f"is in {mf.MANIFEST} but missing from the folder")
    jobs = {n: (folder / n, None) for n in present}
    start = time.monotonic()
    digests = mf.hash_files(jobs, threads=threads, progress=progress)
    # A shard that differs is read once more with its tensors, to name the ones that changed.
    changed = {
        n: (folder / n, headers[n])
        for n, d in digests.items()
        if n in headers
        and (e := manifest.entry(n)) is not None
        and d.sha256 != e.sha256
        and d.size == e.size
    }
    if changed:
        digests.update(mf.hash_files(changed, threads=threads))
    report.hash_seconds = time.monotonic() - start
    report.hashed_bytes = sum(d.size for d in digests.values())
    for m in mf.compare_files(manifest, digests):
        report.add("manifest-digest", m.where, m.message)
    report.manifest = "matched" if len(report.problems) == before else "mismatched"
    if write and report.manifest == "matched":
        report.notes.append(f"{mf.MANIFEST} already matches the folder: left as it is")
    elif write:
        report.notes.append(f"{mf.MANIFEST} kept: it does not match (fix the folder, not it)")


# ---------------------------------------------------------------------------------- deep


def sample_modules(modules: list[str], n: int, seed: int = 0) -> list[str]:
    """A deterministic spread of ``n`` modules (by a seeded hash of the name)."""
    key = lambda m: hashlib.sha256(f"{seed}:{m}".encode()).digest()  # noqa: E731
    return sorted(sorted(modules, key=key)[:n])


def deep_check(
    folder: Path,
    headers: Mapping[str, ShardHeader],
    source: Path,
    report: Report,
    *,
    samples: int = 8,
    max_rel_error: float = 0.25,
) -> None:
    """Dequantize a sample of NVFP4 experts and compare with the BF16 source (needs torch)."""
    if not source.is_dir():
        raise InputError(f"--source {source}: not a folder")
    src_map = dequant.weight_map(source)
    if not src_map:
        raise InputError(f"--source {source}: no safetensors shards (a BF16 checkpoint folder?)")
    modules = sorted(
        m
        for m, parts in _modules(headers).items()
        if {"weight", "weight_scale", "weight_scale_2"} <= parts.keys()
        and parts["weight"][1].dtype == "U8"
    )
    picked = sample_modules(modules, samples)
    for module in picked:
        if f"{module}.weight" not in src_map:
            report.add(
                "deep-source", module, f"has no {module}.weight in the --source checkpoint {source}"
            )
            continue
        parts = _modules(headers)[module]
        rel, max_abs = dequant.compare(folder, parts, source, src_map[f"{module}.weight"], module)
        ok = math.isfinite(rel) and rel <= max_rel_error
        report.deep.append(DeepResult(module, rel, max_abs, ok))
        if not ok:
            report.add(
                "deep-error",
                module,
                f"dequantized weight differs from the BF16 source by {rel:.3f} (relative), "
                f"more than {max_rel_error}: the scales or the packing are wrong",
            )


# ---------------------------------------------------------------------------------- entry


def verify(
    folder: Path | str,
    recipe: Recipe,
    *,
    write: bool = False,
    hash_contents: bool = True,
    source: Path | str | None = None,
    samples: int = 8,
    max_rel_error: float = 0.25,
    threads: int | None = None,
    progress: Progress = lambda _: None,
) -> Report:
    """Every check on ``folder``; returns the report (it raises only for unusable arguments)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a checkpoint folder")
    report = Report(folder)
    config = _read_json(folder / "config.json", report, "config")
    _, headers = _structure(folder, report)
    if isinstance(config, dict):
        if config.get("model_type") != recipe.model.model_type:
            report.add(
                "config",
                "config.json",
                f"model_type is {config.get('model_type')!r}, the recipe says "
                f"{recipe.model.model_type!r}",
            )
        if headers:
            _layout(folder, config, headers, recipe, report)
    if hash_contents:
        _integrity(
            folder, headers, report, write=write, recipe=recipe, threads=threads, progress=progress
        )
    else:
        report.manifest = "not-checked"
    if source is not None and headers:
        deep_check(
            folder, headers, Path(source), report, samples=samples, max_rel_error=max_rel_error
        )
    return report
