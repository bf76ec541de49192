"""`glm51 calib`: build calibration sets from their manifests, record and check digests.

(`glm51 calib estimate` is registered by the quantize stage: it estimates a quantize run.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from glm51.errors import InputError
from glm51.options import RecipeOption, output_file_option
from glm51.outputs import check_output_file

if TYPE_CHECKING:
    from glm51.recipe.schema import Recipe

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
        help="Tokenizer folder or Hub id (default: the recipe's model.source at its revision, "
        "from the Hub cache, else the Hub).",
    ),
]

group = typer.Typer(
    help="Calibration data: build the recipe's passes from their manifests.", no_args_is_help=True
)


def _tokenizer(spec: str | None, recipe: Recipe):
    from glm51.calib.tokenizer import load_tokenizer

    return load_tokenizer(spec, recipe.model.source, recipe.model.source_revision)


def build_command(
    pass_name: Annotated[str, typer.Argument(metavar="PASS", help="A recipe pass name.")],
    out: Annotated[Path, output_file_option("Write the set here (.npz).")],
    data_dir: DataDirOption = None,
    tokenizer: TokenizerOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Build one pass and check it against the manifest's recorded sha256 (exit 3)."""
    from glm51.calib.data import build_pass
    from glm51.calib.manifest import load_manifest
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    manifest_path = loaded.pass_manifest(pass_name)
    if out.suffix != ".npz":
        raise InputError(
            f"--out {out}: expected a .npz file name (the set is written as NumPy .npz)"
        )
    # Never over a file glm51 did not write (a manifest, data), never inside an input.
    check_output_file(
        out, option="--output", inputs={"--data-dir": data_dir, "--tokenizer": tokenizer}
    )
    manifest = load_manifest(manifest_path)
    calib = build_pass(manifest_path, _tokenizer(tokenizer, loaded), data_dir=data_dir)
    calib.save(out)
    checked = (
        "matches the manifest"
        if manifest.sha256
        else f"NOT checked: {manifest_path} records no sha256 yet (`glm51 calib record` writes it)"
    )
    typer.echo(
        f"{pass_name}: {len(calib)} samples, {calib.tokens} tokens, sha256 {calib.digest} "
        f"({checked}) -> {out}"
    )


def record_command(
    passes: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PASS]...", help="Passes to record (default: all)."),
    ] = None,
    data_dir: DataDirOption = None,
    tokenizer: TokenizerOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Build passes and write the sha256 of their token ids into their manifests."""
    from glm51.calib.data import build_pass
    from glm51.calib.manifest import record_digest
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    names = passes or [p.name for p in loaded.quantize.passes]
    manifests = [loaded.pass_manifest(name) for name in names]  # unknown names fail first
    tok = _tokenizer(tokenizer, loaded)
    for manifest in manifests:
        calib = build_pass(manifest, tok, data_dir=data_dir, check=False)
        changed = record_digest(manifest, calib.digest)
        typer.echo(f"{manifest}: sha256 {calib.digest} ({'recorded' if changed else 'same'})")


def register(app: typer.Typer) -> None:
    group.command("build")(build_command)
    group.command("record")(record_command)
    app.add_typer(group, name="calib")
