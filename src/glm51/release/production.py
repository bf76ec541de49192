"""The real release's steps, run on the Blackwell runners by .github/workflows/release.yml:
image (build, push by digest), verify, fidelity (KL against the BF16 source), gates (serve
in the pushed image, smoke, bench), card, publish (the Hub), tag (the image's release tags),
notes (the GitHub release text).
Each writes its record into the run directory; `glm51 release --steps` picks the ones a job
runs, and a re-run skips those whose records are still valid."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import httpx

from glm51 import proc
from glm51.checkpoint.manifest import MANIFEST
from glm51.checkpoint.verify.stage import VerifyRequest
from glm51.endpoint.health import health_url, wait_ready
from glm51.errors import InfraError, InputError, PreflightError
from glm51.fidelity.request import FidelityRequest
from glm51.fidelity.stage import raise_for as fidelity_gates
from glm51.fidelity.stage import run_fidelity
from glm51.image import build as image_build
from glm51.image import runner as image_runner
from glm51.outputs import write_text
from glm51.publish.request import CardRequest, PublishRequest, RunRecords
from glm51.recipe.schema import Recipe
from glm51.records import ImageRecord, read_record
from glm51.release import steps as shared
from glm51.release.measure import BENCH, SMOKE, release_bench, smoke_and_bench
from glm51.release.names import STEPS
from glm51.release.runner import Context, Outcome, Step, recipe_digest
from glm51.release.steps import VERIFY

IMAGE, FIDELITY = "image.json", "fidelity"
CARD, PUBLISHED, TAGS, NOTES = "README.md", "publish.json", "tags.json", "release-notes.md"


def _checkpoint(context: Context) -> Path:
    path = context.request.checkpoint
    if not path:
        raise InputError("--checkpoint PATH (or GLM51_CHECKPOINT): the NVFP4 checkpoint to release")
    return Path(path)


def _checkpoint_identity(context: Context) -> str:
    """What the checkpoint is, not where: its manifest's digest (the same weights on every
    runner give the same key; other weights re-run verify and the gates)."""
    manifest = _checkpoint(context) / MANIFEST
    if not manifest.is_file():
        raise InputError(f"{manifest}: missing (`glm51 verify --write` records it)")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def _image(context: Context) -> ImageRecord:
    return read_record(context.path(IMAGE), ImageRecord)


def pinned_ref(record: ImageRecord) -> str:
    """The pushed image by digest: what every later step runs, whatever its tags do."""
    if not (record.pushed and record.digest):
        raise InputError(f"{record.tags[0]}: not pushed (no registry digest); run the image step")
    return f"{record.tags[0].rsplit(':', 1)[0]}@{record.digest}"


def step_image(recipe: Recipe):
    def run(context: Context) -> Outcome:
        repo = context.request.repo.resolve()
        spec = image_build.plan(
            recipe,
            repo,
            version=context.request.version.removeprefix("v"),
            sha=image_runner.git_sha(repo),
            created=image_runner.created_now(),
            source=image_runner.git_source(repo),
            metadata_file=context.path("buildx-metadata.json"),
            push=True,
            registry=recipe.release.registry,
        )
        # Pushed under a build tag only (never a version tag before the gates); every later
        # step uses the digest, and the release tags come last, in the tag step.
        repository = spec.tags[0].rsplit(":", 1)[0]
        spec = replace(spec, tags=(f"{repository}:build-{spec.build_id}",))
        record = image_runner.build(spec, record=context.path(IMAGE))
        return Outcome(IMAGE, f"pushed {pinned_ref(record)}")

    return run


def verify_request(context: Context) -> VerifyRequest:
    return VerifyRequest(checkpoint=_checkpoint(context), report=context.path(VERIFY))


def step_verify(recipe: Recipe):
    return shared.step_verify(recipe, verify_request)


def step_fidelity(recipe: Recipe):
    """KL of the checkpoint against its BF16 source on the recipe's held-out text, one layer
    at a time on the runner's GPU; [gates.fidelity] decides (a miss stops the release before
    the card and publish)."""

    def run(context: Context) -> Outcome:
        request = FidelityRequest(
            source=Path(context.request.source or ""),
            checkpoint=_checkpoint(context),
            out_dir=context.path(FIDELITY),
            device=context.request.fidelity_device,
        )
        record = run_fidelity(request, recipe, log=context.log)
        fidelity_gates(record)
        return Outcome(
            f"{FIDELITY}/fidelity.json",
            f"KL mean {record.kl.mean:.4g} over {record.positions} positions: gates passed",
        )

    return run


def serve_argv(recipe: Recipe, image: str, checkpoint: Path, name: str) -> list[str]:
    """The pushed image, serving the checkpoint with the gate profile, on the host network."""
    return [
        "docker",
        "run",
        "--detach",
        "--name",
        name,
        "--gpus",
        "all",
        "--ipc=host",
        "--network",
        "host",
        "-v",
        f"{checkpoint.resolve()}:/models/checkpoint:ro",
        "-v",
        "glm51-jit-cache:/cache/jit",
        # The API key by name only: docker copies its value from this environment (never argv).
        *(["-e", recipe.deploy.api_key_env] if _key_set(recipe) else []),
        image,
        "glm51",
        "serve",
        "--profile",
        recipe.gates.profile,
        "--model",
        "/models/checkpoint",
    ]


def _key_set(recipe: Recipe) -> bool:
    name = recipe.deploy.api_key_env
    return bool(name and os.environ.get(name))


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return False
    return True


def _container_running(name: str) -> bool:
    inspect = proc.run(["docker", "inspect", "-f", "{{.State.Running}}", name], check=False)
    return inspect.stdout.strip() == "true"


def step_gates(recipe: Recipe):
    def run(context: Context) -> Outcome:
        image = pinned_ref(_image(context))
        name = f"glm51-gates-{context.request.version}"
        port = recipe.profiles[recipe.gates.profile].server.port
        endpoint = f"http://127.0.0.1:{port}"
        if _answers(health_url("127.0.0.1", port)):  # the gates must measure the pushed image
            raise PreflightError(
                f"something already serves on port {port} of this runner: stop it first "
                "(the gates start their own server there)"
            )
        proc.run(["docker", "rm", "--force", name], check=False)  # a stale one of ours
        proc.run(serve_argv(recipe, image, _checkpoint(context), name))
        passed = False
        try:
            # Loading 450 GB and compiling the kernels takes a while; a dead container ends it.
            running = lambda: _container_running(name)  # noqa: E731
            wait_ready(health_url("127.0.0.1", port), timeout_s=3600, still_running=running)
            smoke_and_bench(recipe, context, endpoint, bench=release_bench(recipe))
            passed = True
        finally:
            if not passed:  # the server's own account of a failure, before it is removed
                proc.run(["docker", "logs", "--tail", "200", name], capture=False, check=False)
            proc.run(["docker", "stop", "--time", "60", name], check=False)
            proc.run(["docker", "rm", "--force", name], check=False)
        return Outcome(BENCH, f"smoke and bench gates passed in {image}")

    return run


def _maybe(context: Context, name: str) -> Path | None:
    return context.path(name) if context.path(name).is_file() else None


def _plots(context: Context) -> RunRecords:
    """The plots this run holds: the card links them as assets/NAME, publish uploads them."""
    return RunRecords(
        plot=_maybe(context, "bench/bench.png"),
        fidelity_plot=_maybe(context, f"{FIDELITY}/fidelity.png"),
    )


def _records(context: Context) -> RunRecords:
    """The records this run holds so far (a card without a bench record says so)."""
    return replace(
        _plots(context),
        image_record=_maybe(context, IMAGE),
        smoke_record=_maybe(context, SMOKE),
        bench_record=_maybe(context, BENCH),
        fidelity_record=_maybe(context, f"{FIDELITY}/fidelity.json"),
    )


def card_request(context: Context) -> CardRequest:
    return CardRequest(
        records=_records(context), output=context.path(CARD), version=context.request.version
    )


def step_card(recipe: Recipe):
    return shared.step_card(recipe, card_request, CARD)


def publish_request(recipe: Recipe, context: Context) -> PublishRequest:
    return PublishRequest(
        checkpoint=_checkpoint(context),
        repo=recipe.model.published,
        version=context.request.version,
        card=context.path(CARD),
        records=_plots(context),
        report=context.path(PUBLISHED),
    )


def step_publish(recipe: Recipe):
    upload = shared.step_publish(recipe, lambda c: publish_request(recipe, c), lambda _: PUBLISHED)

    def run(context: Context) -> Outcome:
        record = _image(context)  # the image tag must be free before anything is uploaded
        tag_points_to(release_tags(recipe, record, context.request.version)[0], str(record.digest))
        return upload(context)

    return run


def release_tags(recipe: Recipe, record: ImageRecord, version: str) -> tuple[str, list[str]]:
    """(the immutable vX.Y.Z-cu130 tag, the moving ones), in the pushed image's repository."""
    repository = record.tags[0].rsplit(":", 1)[0]
    image_name = record.image or "cu130"
    return f"{repository}:{version}-{image_name}", [
        f"{repository}:{tag}" for tag in recipe.release.moving_tags
    ]


IMAGETOOLS = ["docker", "buildx", "imagetools"]
# What the registry says for a tag that does not exist (any other failure is not "absent").
_ABSENT = ("not found", "manifest unknown", "no such manifest", "name unknown")


def tag_points_to(tag: str, digest: str) -> bool:
    """True when ``tag`` already names ``digest``; False when it does not exist; InputError
    when it names another image (a release tag never moves); InfraError when the registry
    cannot say."""
    inspect = [*IMAGETOOLS, "inspect", tag, "--format", "{{json .Manifest}}"]
    found = proc.run(inspect, check=False)
    if found.returncode == 0:
        if digest not in found.stdout:
            raise InputError(f"{tag} exists for another image; a release tag never moves")
        return True
    said = (found.stderr + found.stdout).lower()
    if any(word in said for word in _ABSENT):
        return False
    raise InfraError(f"cannot tell whether {tag} exists: {said.strip()[-300:] or 'no answer'}")


def step_tag(recipe: Recipe):
    def run(context: Context) -> Outcome:
        record = _image(context)
        source = pinned_ref(record)
        fixed, moving = release_tags(recipe, record, context.request.version)
        imagetools = IMAGETOOLS
        if not tag_points_to(fixed, str(record.digest)):
            proc.run([*imagetools, "create", "--tag", fixed, source])
        for tag in moving:  # kept apart: these move with every release
            proc.run([*imagetools, "create", "--tag", tag, source])
        tags = {"immutable": fixed, "moving": moving, "digest": record.digest}
        write_text(context.path(TAGS), json.dumps(tags, indent=2) + "\n")
        return Outcome(TAGS, f"tagged {fixed}")

    return run


def step_notes(recipe: Recipe):
    def run(context: Context) -> Outcome:
        version = context.request.version
        record = _image(context)
        fixed, _ = release_tags(recipe, record, version)
        lines = [
            f"# {recipe.model.published} {version}",
            "",
            f"- Weights and card: https://huggingface.co/{recipe.model.published}/tree/{version}",
            f"- Image: `{fixed}` (`{pinned_ref(record)}`)",
            f"- Serve: `docker run --gpus all --ipc=host -p 5000:5000 -v /models:/models {fixed} "
            "glm51 serve --model /models/GLM-5.1-NVFP4`",
            "",
        ]
        bench = _records(context).read().bench
        if bench is not None:
            lines += ["| figure | tok/s | gate |", "|---|---|---|"]
            for f in bench.figures:
                gate = f"{f.gate.threshold:g}" if f.gate else "-"
                lines.append(f"| {f.name} | {f.tokens_per_s:.1f} | {gate} |")
        write_text(context.path(NOTES), "\n".join(lines) + "\n")
        return Outcome(NOTES, f"{NOTES} written")

    return run


def steps(recipe: Recipe) -> list[Step]:
    made = {
        "image": step_image,
        "verify": step_verify,
        "fidelity": step_fidelity,
        "gates": step_gates,
        "card": step_card,
        "publish": step_publish,
        "tag": step_tag,
        "notes": step_notes,
    }
    digest = recipe_digest(recipe)
    version = lambda c: {"version": c.request.version, "recipe": digest}  # noqa: E731
    checkpoint = lambda c: {"checkpoint": _checkpoint_identity(c), **version(c)}  # noqa: E731
    # The fidelity step is keyed like verify: by the checkpoint's identity (the later jobs of a
    # release run without the BF16 source on their disks).
    inputs = {
        "verify": checkpoint,
        "fidelity": checkpoint,
        "gates": checkpoint,
        "publish": checkpoint,
    }
    return [Step(name, made[name](recipe), inputs.get(name, version)) for name in STEPS]
