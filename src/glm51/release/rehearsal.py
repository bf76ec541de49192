"""The rehearsal: the whole release chain on the CPU with the embedded default, the tiny
`glm_moe_dsa` model. Real code paths end to end (ModelOpt, verify, the card, a publish that
is verified before it is tagged); only the Hub is a local folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from glm51.calib.rehearsal_data import write_jsonl
from glm51.checkpoint.verify import verify
from glm51.errors import InputError
from glm51.outputs import is_marked
from glm51.publish.card import Records, render_card
from glm51.publish.local import publish_to_folder
from glm51.quantize import stage
from glm51.quantize.tiny import build_tiny_model
from glm51.recipe import Recipe
from glm51.records import QuantizeRecord, read_record
from glm51.release.runner import Context, Outcome, Step

TINY, CALIB, CHECKPOINT = "tiny-bf16", "calib.jsonl", "checkpoint"
QUANTIZE_RECORD, VERIFY_REPORT, CARD = "quantize.json", "verify.json", "card/README.md"
HUB = "hub"


def _tiny(context: Context) -> Outcome:
    build_tiny_model(context.path(TINY), overwrite=True, seed=context.options["seed"])
    write_jsonl(context.path(CALIB), context.options["samples"], context.options["seed"])
    return Outcome(None, f"{context.path(TINY)} and {context.options['samples']} conversations")


def _quantize(recipe: Recipe):
    def run(context: Context) -> Outcome:
        calibration = stage.Calibration(files=(context.path(CALIB),))
        request = stage.Request(
            context.path(TINY), context.path(CHECKPOINT), context.path("quantize-work"),
            calibration, overwrite=True,
        )  # fmt: skip
        outcome = stage.quantize(request, recipe, log=context.log)
        shutil.copyfile(request.work_dir / stage.RECORD, context.path(QUANTIZE_RECORD))
        return Outcome(QUANTIZE_RECORD, f"{outcome.output}")

    return run


def _verify(recipe: Recipe):
    def run(context: Context) -> Outcome:
        report = verify(context.path(CHECKPOINT), recipe)
        context.path(VERIFY_REPORT).write_text(report.to_json())
        if not report.ok:
            raise InputError(f"{context.path(CHECKPOINT)}: verify failed: {report.problems[0]}")
        return Outcome(VERIFY_REPORT, "checkpoint verified (manifest, layout)")

    return run


def _card(recipe: Recipe):
    def run(context: Context) -> Outcome:
        records = Records(quantize=read_record(context.path(QUANTIZE_RECORD), QuantizeRecord))
        text = render_card(recipe, records, version=context.options["version"])
        card = context.path(CARD)
        card.parent.mkdir(exist_ok=True)
        card.write_text(text, encoding="utf-8")
        return Outcome(CARD, f"{card}")

    return run


def _publish(recipe: Recipe):
    def run(context: Context) -> Outcome:
        tag = publish_to_folder(
            context.path(CHECKPOINT), context.path(CARD).read_text(), context.path(HUB),
            repo=recipe.model.published, version=context.options["version"],
        )  # fmt: skip
        return Outcome(str(tag.relative_to(context.run_dir)), f"published and tagged: {tag}")

    return run


def _folder_still_there(name: str):
    return lambda context, entry: is_marked(context.path(name))


def steps(recipe: Recipe) -> list[Step]:
    tiny_inputs = lambda c: {"seed": c.options["seed"], "samples": c.options["samples"]}  # noqa: E731
    return [
        Step("tiny-model", _tiny, tiny_inputs, _folder_still_there(TINY)),
        Step(
            "quantize",
            _quantize(recipe),
            lambda c: {"quantize": recipe.quantize.model_dump(mode="json")},
        ),
        Step("verify", _verify(recipe)),
        Step("card", _card(recipe), lambda c: {"version": c.options["version"]}),
        Step("publish", _publish(recipe), lambda c: {"repo": recipe.model.published}),
    ]


def where(run_dir: Path) -> dict[str, Path]:
    """What a finished rehearsal leaves, for the closing message."""
    return {
        "checkpoint": run_dir / CHECKPOINT,
        "card": run_dir / CARD,
        "reports": run_dir,
        "published": run_dir / HUB,
    }
