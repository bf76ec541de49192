"""`glm51 calib`: build calibration sets from their manifests, record and check digests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glm51.options import RecipeOption

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Local source files (NAME.jsonl/.json/.parquet per source) instead of the Hub.",
        file_okay=False,
        exists=True,
    ),
]
TokenizerOption = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        help="Tokenizer folder or Hub id (default: the recipe's model.source at its revision).",
    ),
]


def _tokenizer(spec: str | None, recipe: Path | None):
    from transformers import AutoTokenizer

    from glm51.recipe import load_recipe

    if spec:
        return AutoTokenizer.from_pretrained(spec)
    model = load_recipe(recipe).model
    return AutoTokenizer.from_pretrained(model.source, revision=model.source_revision)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Calibration data: build the recipe's passes from their manifests.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="calib")

    @group.command("build")
    def build(
        pass_name: Annotated[str, typer.Argument(metavar="PASS", help="A recipe pass name.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Write the set here (.npz).")],
        data_dir: DataDirOption = None,
        tokenizer: TokenizerOption = None,
        recipe: RecipeOption = None,
    ) -> None:
        """Build one pass and check it against the manifest's recorded sha256 (exit 3)."""
        from glm51.quantize.calibdata import build_pass, resolve_manifest

        manifest = resolve_manifest(pass_name, recipe)
        calib = build_pass(manifest, _tokenizer(tokenizer, recipe), data_dir=data_dir)
        calib.save(out)
        typer.echo(
            f"{pass_name}: {len(calib)} samples, {calib.tokens} tokens, sha256 {calib.digest} "
            f"-> {out}"
        )

    @group.command("record")
    def record(
        passes: Annotated[
            list[str] | None,
            typer.Argument(metavar="[PASS]...", help="Passes to record (default: all)."),
        ] = None,
        data_dir: DataDirOption = None,
        tokenizer: TokenizerOption = None,
        recipe: RecipeOption = None,
    ) -> None:
        """Build passes and write the sha256 of their token ids into their manifests."""
        from glm51.quantize.calibdata import build_pass, resolve_manifest
        from glm51.quantize.manifest import record_digest
        from glm51.recipe import load_recipe

        names = passes or [p.name for p in load_recipe(recipe).quantize.passes]
        tok = _tokenizer(tokenizer, recipe)
        for name in names:
            manifest = resolve_manifest(name, recipe)
            calib = build_pass(manifest, tok, data_dir=data_dir, check=False)
            changed = record_digest(manifest, calib.digest)
            typer.echo(f"{manifest}: sha256 {calib.digest} ({'recorded' if changed else 'same'})")

    @group.command("estimate")
    def estimate_cmd(
        model: Annotated[
            Path,
            typer.Option(help="Checkpoint folder (config.json, safetensors index).", exists=True),
        ],
        calib: Annotated[
            list[Path] | None,
            typer.Option(help="Built calibration sets (.npz) (default: the recipe's manifests)."),
        ] = None,
        batch_size: Annotated[int, typer.Option(min=1)] = 1,
        recipe: RecipeOption = None,
    ) -> None:
        """Estimated disk, host and GPU memory, resident and one-layer-at-a-time."""
        from glm51.checkpoint.folder import load_model_config
        from glm51.quantize.calibdata import CalibSet, resolve_manifest
        from glm51.quantize.estimate import CalibShape, estimate
        from glm51.quantize.manifest import load_manifest
        from glm51.recipe import load_recipe

        config, index = load_model_config(model)
        if calib:
            units = [CalibShape.of_set(CalibSet.load(p)) for p in calib]
        else:
            units = [
                CalibShape.of_manifest(load_manifest(resolve_manifest(p.name, recipe)))
                for p in load_recipe(recipe).quantize.passes
            ]
        typer.echo(estimate(config, units, index=index, batch_size=batch_size).render())
