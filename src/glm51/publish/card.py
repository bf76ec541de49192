"""The model card: rendered from release/model-card.md.j2, the recipe and the run's records.

The YAML metadata is built with huggingface_hub's ModelCardData and must survive a round
trip (parse the rendered card back, compare); the body comes from the template. The launch
command is rendered from the serve profile, the table from the bench record: a card
rendered without a bench record says so instead of showing numbers; the same for the
fidelity record (KL against BF16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glm51.errors import InputError
from glm51.recipe.load import default_recipe_path
from glm51.recipe.schema import Recipe
from glm51.records import BenchRecord, FidelityRecord, ImageRecord, QuantizeRecord, SmokeRecord
from glm51.sglang.command import render

TEMPLATE = "model-card.md.j2"
# GLM-5.1's licence on the Hub (zai-org/GLM-5.1); the quantization keeps it.
LICENSE = "mit"
TAGS = ("nvfp4", "modelopt", "sglang", "glm", "moe", "quantized")
FIGURE_NAMES = {
    "short_tg": "Short prompt TG",
    "tg_32k": "32K context TG",
    "tg_128k": "128K context TG",
    "c32": "32 concurrent",
    "c64": "64 concurrent",
}


@dataclass(frozen=True)
class Records:
    image: ImageRecord | None = None
    quantize: QuantizeRecord | None = None
    smoke: SmokeRecord | None = None
    bench: BenchRecord | None = None
    fidelity: FidelityRecord | None = None


def template_path(recipe: Recipe) -> Path:
    """Beside the recipe: the checkout's release/, or the copy in the wheel."""
    return (recipe.source or default_recipe_path()).parent / TEMPLATE


def metadata(recipe: Recipe, *, license: str = LICENSE):
    from huggingface_hub import ModelCardData

    return ModelCardData(
        base_model=recipe.model.source,
        base_model_relation="quantized",
        license=license,
        tags=list(TAGS),
        pipeline_tag="text-generation",
        library_name="transformers",
    )


def launch_command(recipe: Recipe, profile_name: str | None = None) -> tuple[str, str]:
    """(profile name, the shell line) for serving the published repo with that profile."""
    name, profile = recipe.profile(profile_name)
    spec = render(recipe, profile, model_path=recipe.model.published, python="python3")
    return name, spec.shell()


def render_card(
    recipe: Recipe,
    records: Records = Records(),
    *,
    version: str | None = None,
    profile: str | None = None,
    plot: str | None = None,
    fidelity_plot: str | None = None,
    template: Path | None = None,
    license: str = LICENSE,
) -> str:
    """The card's text (YAML front matter + body); raises InputError when its YAML does not
    round-trip through ModelCardData."""
    import jinja2

    template = template or template_path(recipe)
    try:
        source = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{template}: cannot read the card template ({exc})") from None
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    profile_name, launch = launch_command(recipe, profile)
    passes = {p.name: p for p in recipe.quantize.passes}
    try:
        body = env.from_string(source).render(
            title=f"{recipe.model.published.split('/')[-1]}",
            recipe=recipe,
            quant=recipe.quantize,
            profile_name=profile_name,
            profile=recipe.profiles[profile_name],
            launch=launch,
            version=version,
            image=records.image,
            qrecord=records.quantize,
            passes=passes,
            smoke=records.smoke,
            bench=records.bench,
            plot=plot,
            figure_names=FIGURE_NAMES,
            fidelity=records.fidelity,
            fidelity_plot=fidelity_plot,
        )
    except jinja2.TemplateError as exc:
        raise InputError(f"{template}: the card template failed to render ({exc})") from None
    data = metadata(recipe, license=license)
    text = f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}"
    check_round_trip(text, data.to_dict())
    return text


def check_round_trip(text: str, expected: dict) -> None:
    """Parse the card back with ModelCard and compare its metadata with what was written."""
    from huggingface_hub import ModelCard, ModelCardData

    parsed = ModelCard(text).data.to_dict()
    again = ModelCardData(**parsed).to_dict()
    if parsed != expected or again != expected:
        raise InputError(
            f"the card's YAML metadata does not round-trip through ModelCardData: wrote "
            f"{expected}, read back {parsed}"
        )
