"""`glm51 card` and `glm51 publish` as one library call each: `run_card` writes the card,
`run_publish` uploads to the Hub (or copies into a local folder: the rehearsal's Hub) and
writes the outcome. The CLI and the release build the same requests (publish/request.py)
and call these."""

from __future__ import annotations

from glm51.outputs import copy_file, os_errors, write_text
from glm51.publish.card import render_card
from glm51.publish.hub import Hub, check_online
from glm51.publish.local import publish_to_folder
from glm51.publish.request import CardRequest, PublishRequest, RunRecords, plot_link
from glm51.publish.run import Outcome, publish
from glm51.recipe.schema import Recipe
from glm51.ui import Log, Progress, quiet

__all__ = ["CardRequest", "PublishRequest", "RunRecords", "run_card", "run_publish"]


def run_card(req: CardRequest, recipe: Recipe, *, log: Log = quiet) -> str:
    """The card's text; with ``req.output``, written there with its plot beside it (the
    link resolves where the card lies, as it does in the Hub repo)."""
    req.check()
    plot, fidelity_plot = req.records.plot, req.records.fidelity_plot
    text = render_card(
        recipe,
        req.records.read(),
        version=req.version,
        profile=req.profile,
        plot=plot_link(plot) if plot else None,
        fidelity_plot=plot_link(fidelity_plot) if fidelity_plot else None,
    )
    if req.output is not None:
        write_text(req.output, text)
        log(f"wrote {req.output}")
    for source, beside in req.plots_beside().values():
        with os_errors(beside.parent):
            beside.parent.mkdir(exist_ok=True)
        copy_file(source, beside)
    return text


def _card_text(req: PublishRequest, recipe: Recipe) -> bytes:
    if req.card is not None:
        return req.card.read_bytes()
    card = CardRequest(records=req.records, version=req.version, profile=req.profile)
    return run_card(card, recipe).encode()


def run_publish(
    req: PublishRequest, recipe: Recipe, *, log: Log = quiet, progress: Progress = quiet
) -> Outcome:
    """Publish (see glm51.publish.run), write ``req.report``, return the outcome."""
    req.check()
    card = _card_text(req, recipe)
    plots = {plot_link(path): path for path in req.records.plots().values()}
    if req.to is not None:
        tag = publish_to_folder(
            req.checkpoint,
            card.decode(),
            req.to,
            repo=req.repo,
            version=req.version,
            extra=plots or None,
            option="--to",
        )
        outcome = Outcome(req.repo, req.version, "published", f"copied into {tag.parents[1]}")
        log(f"published and tagged: {tag}")
    else:
        check_online()
        hub = Hub(endpoint=req.hub_endpoint, timeout_s=req.hub_timeout_s)
        extra = {link: path.read_bytes() for link, path in plots.items()}
        outcome = publish(req, recipe, card=card, hub=hub, extra=extra, log=log, progress=progress)
    if req.report is not None:
        write_text(req.report, outcome.to_json())
    return outcome
