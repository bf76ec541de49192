"""The steps the release and the rehearsal share: each builds its stage's request (the same
one `glm51 verify|card|publish` builds from the same options) and calls the stage in this
process. The two chains differ only in the requests' inputs."""

from __future__ import annotations

from collections.abc import Callable

from glm51.checkpoint.verify.stage import VerifyRequest, raise_for, run_verify
from glm51.outputs import os_errors
from glm51.publish.stage import CardRequest, PublishRequest, run_card, run_publish
from glm51.recipe.schema import Recipe
from glm51.release.runner import Context, Outcome

VERIFY = "verify.json"


def step_verify(recipe: Recipe, request: Callable[[Context], VerifyRequest]):
    def run(context: Context) -> Outcome:
        raise_for(run_verify(request(context), recipe))  # the report is written either way
        return Outcome(VERIFY, "checkpoint verified (structure, layout, manifest)")

    return run


def step_card(recipe: Recipe, request: Callable[[Context], CardRequest], card: str):
    """``card``: where the request writes it, relative to the run folder (its record)."""

    def run(context: Context) -> Outcome:
        with os_errors(context.path(card).parent):
            context.path(card).parent.mkdir(exist_ok=True)
        run_card(request(context), recipe)
        return Outcome(card, f"card rendered from the records: {context.path(card)}")

    return run


def step_publish(
    recipe: Recipe,
    request: Callable[[Context], PublishRequest],
    record: Callable[[PublishRequest], str],
):
    def run(context: Context) -> Outcome:
        req = request(context)
        outcome = run_publish(req, recipe, log=context.log)
        return Outcome(record(req), f"{req.repo} {req.version} {outcome.status}")

    return run
