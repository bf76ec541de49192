"""The fault catalogue, one class at a time, through the real CLI in a subprocess.

Where the bad-input catalogue (test_bad_input.py) lists the cases a new user hit, this one
holds each *class* of rule the mechanisms enforce, with cases across the commands:
1. where outputs may go (never inside an input or another kind of glm51 output, never over
   a file glm51 did not write);
2. what the machine and the network refuse (permissions, a file-size limit, a refused
   connection, an unknown host, offline mode, a bad URL), each typed with its exit code;
3. options checked before any work, naming the option;
4. figures labelled as measured.
Every case asserts the exit code, the words naming the file or option, no traceback, and that
every input byte is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.doubles.openai_double import Config, OpenAIDouble

GLM51 = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv[0] = 'glm51'; main()",
]
NOBODY = 65534


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path, str], list[str]]  # (tmp folder, a server URL) -> glm51 arguments
    code: int
    words: Callable[[Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], object] = lambda t: None


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", **extra}
    env.pop("GLM51_DEBUG", None)
    env.pop("HF_HUB_OFFLINE", None) if "HF_HUB_OFFLINE" not in extra else None
    return env


def _glm51(argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GLM51, *argv], capture_output=True, text=True, env=_env(env or {}), timeout=300, **kw
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The tiny BF16 model and its NVFP4 quantization (written by glm51 quantize)."""
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("faults")
    build_tiny_model(root / "bf16")
    write_jsonl(root / "calib.jsonl", 4, 0)
    done = _glm51(
        [
            "quantize",
            "--model",
            str(root / "bf16"),
            "--output",
            str(root / "nvfp4"),
            "--calib-file",
            str(root / "calib.jsonl"),
        ]
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def work(tmp_path, tiny) -> Path:
    for name in ("bf16", "nvfp4"):
        shutil.copytree(tiny / name, tmp_path / name)
    shutil.copyfile(tiny / "calib.jsonl", tmp_path / "calib.jsonl")
    return tmp_path


def _publish(t: Path, *extra: str) -> list[str]:
    return ["publish", str(t / "nvfp4"), "--repo", "o/r", "--version", "v1.0.0", *extra]


def _foreign_card(t: Path) -> None:
    (t / "README.md").write_text("# my own notes\n")


def _nested_reports(t: Path) -> None:
    (t / "nvfp4" / "a").mkdir()


CASES = [
    # -- 1. where outputs may go --------------------------------------------------------------
    Case(
        "report-inside-the-checkpoint-in-a-dry-run",
        lambda t, url: _publish(t, "--dry-run", "--report", str(t / "nvfp4" / "config.json")),
        3,
        lambda t: [f"--report {t / 'nvfp4' / 'config.json'} is inside CHECKPOINT"],
    ),
    Case(
        "card-over-a-file-glm51-did-not-write",
        lambda t, url: ["card", "-o", str(t / "README.md")],
        3,
        lambda t: [f"--output {t / 'README.md'}: exists, and glm51 cannot tell that it wrote it"],
        setup=_foreign_card,
    ),
    Case(
        "bench-out-is-a-checkpoint",
        lambda t, url: ["bench", "--endpoint", url, "--out", str(t / "nvfp4")],
        3,
        lambda t: [f"--out {t / 'nvfp4'}: is a checkpoint folder glm51 wrote, not a reports"],
    ),
    Case(
        "smoke-out-two-levels-inside-a-checkpoint",
        lambda t, url: ["smoke", "--endpoint", url, "--out", str(t / "nvfp4" / "a" / "b")],
        3,
        lambda t: [f"is inside {t / 'nvfp4'}, a checkpoint glm51 wrote"],
        setup=_nested_reports,
    ),
    Case(
        "quantize-output-two-levels-inside-the-model",
        lambda t, url: [
            "quantize",
            "--model",
            str(t / "bf16"),
            "--output",
            str(t / "bf16" / "a" / "b"),
            "--calib-file",
            str(t / "calib.jsonl"),
        ],
        3,
        lambda t: [f"--output {t / 'bf16' / 'a' / 'b'} is inside --model {t / 'bf16'}"],
    ),
    Case(
        "calib-out-deep-inside-the-data-dir",
        lambda t, url: [
            "calib",
            "build",
            "coding",
            "--tokenizer",
            str(t / "bf16"),
            "--data-dir",
            str(t / "bf16"),
            "--output",
            str(t / "bf16" / "deeper" / "c.npz"),
        ],
        3,
        lambda t: [f"--output {t / 'bf16' / 'deeper' / 'c.npz'} is inside --data-dir"],
        setup=lambda t: (t / "bf16" / "deeper").mkdir(),
    ),
    Case(
        "tiny-model-calib-out-over-a-file-glm51-did-not-write",
        lambda t, url: ["tiny-model", str(t / "new"), "--calib-out", str(t / "calib.jsonl")],
        3,
        lambda t: [
            f"--calib-out {t / 'calib.jsonl'}: exists, and glm51 cannot tell that it wrote it"
        ],
    ),
    # -- 2. what the network refuses ----------------------------------------------------------
    Case(
        "publish-connection-refused",
        lambda t, url: _publish(t, "--dry-run", "--hub-endpoint", "http://127.0.0.1:9"),
        6,
        lambda t: ["http://127.0.0.1:9 refused the connection", "Nothing was committed"],
    ),
    Case(
        "publish-unknown-host",
        lambda t, url: _publish(t, "--dry-run", "--hub-endpoint", "http://hub.invalid"),
        6,
        lambda t: ["cannot resolve the Hub's host 'hub.invalid'"],
    ),
    Case(
        "publish-offline",
        lambda t, url: _publish(t, "--dry-run"),
        3,
        lambda t: ["HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE"],
        env={"HF_HUB_OFFLINE": "1"},
    ),
    Case(
        "publish-endpoint-not-a-url",
        lambda t, url: _publish(t, "--dry-run", "--hub-endpoint", "hub.example.com"),
        3,
        lambda t: ["--hub-endpoint (HF_ENDPOINT) 'hub.example.com': expected an http(s) URL"],
    ),
    Case(
        "publish-old-endpoint-spelling-warns-and-works",
        lambda t, url: _publish(t, "--dry-run", "--endpoint", "http://127.0.0.1:9"),
        6,
        lambda t: ["--endpoint is deprecated", "use --hub-endpoint", "127.0.0.1:9 refused"],
    ),
    Case(
        "publish-old-endpoint-spelling-wins-over-hf-endpoint",
        lambda t, url: _publish(t, "--dry-run", "--endpoint", "http://127.0.0.1:18"),
        6,
        lambda t: ["http://127.0.0.1:18 refused the connection"],
        env={"HF_ENDPOINT": "http://127.0.0.1:9"},
    ),
    Case(
        "verify-old-samples-spelling-warns-and-works",
        lambda t, url: ["verify", str(t / "nvfp4"), "--samples", "2"],
        0,
        lambda t: ["--samples is deprecated", "use --experts", "verified"],
    ),
    Case(
        "publish-repo-id-the-hub-refuses",
        lambda t, url: ["publish", str(t / "nvfp4"), "--repo", "o/r..x", "--version", "v1.0.0"],
        3,
        lambda t: ["--repo 'o/r..x': expected OWNER/NAME as the Hub allows them"],
    ),
    # -- 3. options, checked before any work --------------------------------------------------
    Case(
        "bench-no-figures",
        lambda t, url: ["bench", "--endpoint", url, "--out", str(t / "b"), "--figures", ""],
        3,
        lambda t: ["--figures '': names no figure"],
    ),
    Case(
        "bench-size-below-the-template",
        lambda t, url: (
            [
                "bench",
                "--endpoint",
                url,
                "--out",
                str(t / "b"),
                "--figures",
                "short_tg,tg_32k",
                "--context-32k",
                "5",
            ]
        ),
        3,
        lambda t: ["--context-32k 5: a prompt of 5 tokens is shorter than the template"],
    ),
    Case(
        "card-version-not-a-version",
        lambda t, url: ["card", "--version", "1.0"],
        3,
        lambda t: ["--version '1.0': expected vMAJOR.MINOR.PATCH"],
    ),
    Case(
        "publish-hub-timeout-zero",
        lambda t, url: _publish(t, "--dry-run", "--hub-timeout", "0"),
        2,
        lambda t: ["Invalid value for '--hub-timeout'"],
    ),
    Case(
        "smoke-needle-zero",
        lambda t, url: ["smoke", "--endpoint", url, "--out", str(t / "s"), "--needle-tokens", "0"],
        3,
        lambda t: ["--needle-tokens '0': expected sizes of at least 1 token"],
    ),
    Case(
        "serve-port-out-of-range",
        lambda t, url: ["serve", "--model", str(t / "nvfp4"), "--dry-run", "--port", "70000"],
        2,
        lambda t: ["Invalid value for '--port'", "65535"],
    ),
    Case(
        "release-rehearsal-with-a-checkpoint",
        lambda t, url: (
            [
                "release",
                "--rehearsal",
                "--checkpoint",
                str(t / "nvfp4"),
                "--run-dir",
                str(t / "run"),
            ]
        ),
        3,
        lambda t: ["--checkpoint: not used with --rehearsal"],
    ),
    Case(
        "release-seed-without-rehearsal",
        lambda t, url: (
            [
                "release",
                "--checkpoint",
                str(t / "nvfp4"),
                "--seed",
                "3",
                "--run-dir",
                str(t / "run"),
            ]
        ),
        3,
        lambda t: ["--seed: only for --rehearsal"],
    ),
    Case(
        "release-unknown-step",
        lambda t, url: (
            [
                "release",
                "--checkpoint",
                str(t / "nvfp4"),
                "--steps",
                "verify,gatez",
                "--run-dir",
                str(t / "run"),
            ]
        ),
        3,
        lambda t: ["--steps: unknown ['gatez']"],
    ),
]


@pytest.fixture(scope="module")
def server():
    with OpenAIDouble(Config(rate_tok_s=2000)) as double:
        yield double.url


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_class_of_fault_is_named_with_its_exit_code_and_nothing_changes(case, work, server):
    case.setup(work)
    before = _digests(work)
    done = _glm51(case.argv(work, server), case.env)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == case.code, done.stderr
    for words in case.words(work):
        assert words in said, done.stderr
    assert "Traceback" not in done.stderr and "bug in glm51" not in said
    assert _digests(work) == before  # every input byte for byte, nothing added or removed


def test_a_quantize_past_a_file_size_limit_exits_6_and_the_previous_output_survives(work):
    """Python ignores SIGXFSZ, so past `ulimit -f` writes fail with EFBIG: a full disk's
    stand-in. The export fails naming where it wrote; the earlier checkpoint is untouched."""
    before = _digests(work / "nvfp4")
    limit = 100_000  # above every record, below one shard of the tiny model

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = ["quantize", "--model", str(work / "bf16"), "--output", str(work / "nvfp4")]
    argv += ["--calib-file", str(work / "calib.jsonl"), "--overwrite"]
    done = _glm51(argv, preexec_fn=limited)
    said = " ".join(done.stderr.split())
    assert done.returncode == 6, done.stderr
    assert f"{work / '.nvfp4.partial'}" in said and "a file-size limit (ulimit -f)" in said
    assert "Traceback" not in done.stderr and "bug in glm51" not in said
    assert _digests(work / "nvfp4") == before
    assert not (work / ".nvfp4.partial").exists()


def test_a_full_disk_before_quantize_is_refused_against_the_estimate(work, monkeypatch):
    """The free-space check compares the estimate with what the disk has, before calibrating."""
    import shutil as sh

    from glm51.errors import InfraError
    from glm51.quantize import stage
    from glm51.recipe.load import load_recipe

    usage = sh.disk_usage(work)
    monkeypatch.setattr("glm51.outputs.shutil.disk_usage", lambda p: usage._replace(free=1000))
    req = stage.Request(
        model=work / "bf16",
        output=work / "again",
        work_dir=work / "again.work",
        calibration=stage.Calibration(files=(work / "calib.jsonl",)),
    )
    with pytest.raises(InfraError) as exc:
        stage.quantize(req, load_recipe(None))
    assert str(exc.value).startswith(
        f"--output {work}: the NVFP4 checkpoint (the estimate above) needs about"
    )
    assert "1000" not in str(exc.value) and "0.00 MB free" in str(exc.value)
    assert not (work / "again").exists() and not (work / "again.work").exists()


def _as_nobody_works() -> str | None:
    if os.geteuid() != 0:
        return "runs glm51 as another uid: needs root (CI runs as root)"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import glm51.cli"],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            text=True,
            cwd="/",
        )
    except OSError as exc:  # e.g. the interpreter lives under a 0700 /root
        return f"uid {NOBODY} cannot run {sys.executable}: {exc}"
    if probe.returncode:
        return f"uid {NOBODY} cannot import glm51 from this checkout: {probe.stderr[-200:]}"
    return None


_NOBODY = _as_nobody_works()


@pytest.mark.skipif(_NOBODY is not None, reason=str(_NOBODY))
def test_a_checkpoint_quantized_by_root_is_readable_and_verifiable_by_another_uid(tiny):
    shared = Path(tempfile.mkdtemp(prefix="glm51-shared-"))
    try:
        os.chmod(shared, 0o755)  # a folder both users reach (pytest's tmp is 0700)
        old = os.umask(0o022)
        try:
            done = _glm51(
                [
                    "quantize",
                    "--model",
                    str(tiny / "bf16"),
                    "--output",
                    str(shared / "ckpt"),
                    "--calib-file",
                    str(tiny / "calib.jsonl"),
                ]
            )
        finally:
            os.umask(old)
        assert done.returncode == 0, done.stderr
        for path in (shared / "ckpt").rglob("*"):
            assert path.stat().st_mode & 0o004, f"{path} is not readable by others"
        verified = _glm51(
            ["verify", str(shared / "ckpt")], user=NOBODY, group=NOBODY, extra_groups=[], cwd=shared
        )
        assert verified.returncode == 0, verified.stderr
        assert "verified" in verified.stderr and "manifest matched" in verified.stdout
        # A file made unreadable to that user is bad input naming it, not a bug.
        config = shared / "ckpt" / "config.json"
        config.chmod(0o600)
        denied = _glm51(
            ["verify", str(shared / "ckpt")], user=NOBODY, group=NOBODY, extra_groups=[], cwd=shared
        )
        assert denied.returncode == 3, denied.stderr
        said = " ".join(denied.stderr.split())
        assert f"{config}: permission denied to uid {NOBODY}" in said
        assert "Traceback" not in denied.stderr and "bug in glm51" not in said
    finally:
        shutil.rmtree(shared)


def _bench(server: str, out: Path, figures: str, context_32k: str, *extra: str):
    argv = ["bench", "--endpoint", server, "--out", str(out), "--figures", figures]
    return _glm51([*argv, "--context-32k", context_32k, "--max-tokens", "16", *extra])


def test_a_figure_measured_at_another_size_is_labelled_so_and_not_gated(work, server):
    out = work / "bench"
    done = _bench(server, out, "tg_32k", "2000", "--warmup", "0.2", "--duration", "0.5")
    assert done.returncode == 0, done.stderr
    md = (out / "bench.md").read_text()
    assert "| | TG at a 2000-token prompt |" in md and "32K" not in md
    assert "| gate | - |" in md
    from glm51.records import BenchRecord, read_record

    (figure,) = read_record(out / "bench.json", BenchRecord).figures
    assert figure.gate is None and figure.context_tokens == 2000
    card = _glm51(["card", "--bench-record", str(out / "bench.json")])
    assert "TG at a 2000-token prompt" in card.stdout and "32K context TG" not in card.stdout
    assert "| pass" not in card.stdout


def test_a_size_below_the_template_is_refused_before_any_figure_is_measured(work, server):
    out = work / "bench"
    done = _bench(server, out, "short_tg,tg_32k", "5", "--warmup", "5", "--duration", "30")
    assert done.returncode == 3, done.stderr
    assert "Short TG:" not in done.stderr  # no figure was measured, none thrown away
    assert not out.exists()  # the folder is made only when there is something to write


@pytest.mark.docker
def test_the_images_user_verifies_a_checkpoint_quantized_by_root(tiny, image):
    """The production case: the runner quantizes as root, the image (uid 1000) reads it."""
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{tiny / 'nvfp4'}:/models/ckpt:ro",
            image,
            "sh",
            "-c",
            "id -u && glm51 verify /models/ckpt",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "1000"  # the image's glm51 user, not root
    said = done.stdout + done.stderr  # no terminal in the container: rich's streams differ
    assert "manifest matched" in said and "verified /models/ckpt" in said
