"""`glm51 router`: the smg command from the recipe, and the refusals before smg starts (exit 3,
nothing started): a replica that does not answer, serves another model, wants a key it was not
given; a key file missing or empty; no replicas at all."""

from __future__ import annotations

import re
import shlex
import socket
from unittest import mock

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from tests.doubles.openai_double import Config, OpenAIDouble
from tests.support.cli import error_text, exit_code

KEY = "sk-router-unit-91b2"


def _router(*args: str):
    """The CLI with smg's start intercepted (a child that exits 0 at once; no signal handlers)."""
    with (
        mock.patch("glm51.proc.spawn") as spawn,
        mock.patch("glm51.proc.forward_signals"),
    ):
        spawn.return_value.wait.return_value = 0
        result = CliRunner().invoke(app, ["router", "--port", str(_free_port()), *args])
    return result, spawn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dry_run_prints_the_command_from_the_recipe_and_the_keys_source(tmp_path):
    (tmp_path / "key").write_text(KEY)
    result, spawn = _router(
        "--dry-run", "--worker-url", "http://10.0.0.1:5000", "--worker-url",
        "http://10.0.0.2:5000/v1", "--api-key-file", str(tmp_path / "key"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not spawn.called and KEY not in result.output
    words = shlex.split(result.output.strip().splitlines()[-1])
    assert words[1:3] == ["-m", "glm51.router.keyed"]
    at = words.index("--worker-urls")
    assert words[at + 1 : at + 3] == ["http://10.0.0.1:5000", "http://10.0.0.2:5000"]
    # The recipe's [deploy.router]: policy, health thresholds, retries, ports.
    for flag, value in (
        ("--policy", "cache_aware"),
        ("--health-failure-threshold", "3"),
        ("--health-success-threshold", "2"),
        ("--health-check-interval-secs", "10"),
        ("--retry-max-retries", "3"),
        ("--prometheus-port", "29000"),
        ("--host", "0.0.0.0"),
    ):
        assert words[words.index(flag) + 1] == value, flag
    assert "--api-key" not in words
    assert f"the file {tmp_path / 'key'}" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "--worker-url: no replicas"),
        (
            ["--worker-url", "10.0.0.1:5000"],
            "--worker-url '10.0.0.1:5000': expected an http(s) URL",
        ),
        (["--worker-url", "http://h:1", "--worker-url", "http://h:1/"], "named twice"),
        (
            ["--worker-url", "http://h:1", "--port", "29001", "--prometheus-port", "29001"],
            "--port 29001 and --prometheus-port 29001: the same port",
        ),
        (["--worker-url", "http://127.0.0.1:9"], "http://127.0.0.1:9: does not answer"),
        (["--worker-url", "http://h:1", "--api-key-file", "/nonexistent/key"], "does not exist"),
    ],
)
def test_bad_input_is_exit_3_and_starts_nothing(args, words):
    result, spawn = _router(*args)
    assert exit_code(result) == 3, result.output
    assert words in error_text(result)
    assert not spawn.called


def test_an_empty_key_file_is_exit_3(tmp_path):
    (tmp_path / "key").write_text("\n")
    result, spawn = _router("--worker-url", "http://h:1", "--api-key-file", str(tmp_path / "key"))
    assert exit_code(result) == 3 and "the API key is empty" in error_text(result)
    assert not spawn.called


def test_a_replica_serving_another_model_is_refused_by_url():
    with OpenAIDouble(Config(served_name="other/model")) as other, OpenAIDouble() as good:
        result, spawn = _router("--worker-url", good.url, "--worker-url", other.url)
    assert exit_code(result) == 3
    assert f"--worker-url {other.url}: serves ['other/model'], not 'GLM-5.1'" in error_text(result)
    assert not spawn.called


def test_a_replica_that_is_not_healthy_is_refused():
    with OpenAIDouble(Config(faults=frozenset({"health-503"}))) as sick:
        result, spawn = _router("--worker-url", sick.url)
    assert exit_code(result) == 3 and "/health answered HTTP 503" in error_text(result)
    assert not spawn.called


def test_a_replica_that_wants_a_key_the_router_lacks_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("GLM51_API_KEY", raising=False)
    with OpenAIDouble(Config(api_key=KEY)) as keyed:
        result, spawn = _router("--worker-url", keyed.url)
        assert exit_code(result) == 3 and "no API key was sent" in error_text(result)
        (tmp_path / "key").write_text(KEY)
        ok, started = _router("--worker-url", keyed.url, "--api-key-file", str(tmp_path / "key"))
    assert not spawn.called
    # With the key every check passes and smg is started, the key on its stdin only.
    assert ok.exit_code == 0, ok.output
    assert started.called
    (argv,), kwargs = started.call_args
    assert kwargs["secret_stdin"] == KEY and KEY not in " ".join(argv)


def test_a_public_gateway_without_a_key_warns_and_the_recipe_can_refuse_it(
    tmp_path, monkeypatch, recipe_text
):
    import shutil
    from pathlib import Path

    monkeypatch.delenv("GLM51_API_KEY", raising=False)
    with OpenAIDouble() as good:
        result, spawn = _router("--worker-url", good.url, "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert "binding 0.0.0.0 (not loopback) without an API key" in result.output
    assert spawn.called
    strict = tmp_path / "strict.toml"
    strict.write_text(recipe_text.replace("require_api_key = false", "require_api_key = true"))
    shutil.copytree(Path(__file__).parents[2] / "release" / "calibration", tmp_path / "calibration")
    refused, spawn = _router(
        "--worker-url", "http://h:1", "--host", "0.0.0.0", "--recipe", str(strict), "--dry-run"
    )
    assert exit_code(refused) == 3 and "deploy.require_api_key is true" in error_text(refused)
    assert not spawn.called


def test_the_replicas_can_come_from_the_recipe(tmp_path, recipe_text):
    import shutil
    from pathlib import Path

    listed = recipe_text.replace(
        "retry_max_retries = 3\n",
        'retry_max_retries = 3\nworker_urls = ["http://10.0.0.7:5000", "http://10.0.0.8:5000"]\n',
    )
    (tmp_path / "r.toml").write_text(listed)
    shutil.copytree(Path(__file__).parents[2] / "release" / "calibration", tmp_path / "calibration")
    result, _ = _router("--dry-run", "--recipe", str(tmp_path / "r.toml"))
    assert result.exit_code == 0, result.output
    assert "--worker-urls http://10.0.0.7:5000 http://10.0.0.8:5000 --policy" in result.output
    given, _ = _router(
        "--dry-run", "--recipe", str(tmp_path / "r.toml"), "--worker-url", "http://a:1"
    )
    assert "--worker-urls http://a:1 --policy" in given.output  # the command line wins


def test_a_replica_that_is_a_web_server_is_named_as_one_without_its_html(tmp_path):
    """A static server answers /health (a file) but /v1/models with an HTML 404 page: exit 3,
    said as not an OpenAI-compatible server, the page told by its text, in one line."""
    import functools
    import http.server
    import threading

    (tmp_path / "health").write_text("<html><body>ok</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result, spawn = _router("--worker-url", url)
        server.shutdown()
    said = error_text(result).strip().splitlines()[-1]  # after serve's no-key warning
    assert exit_code(result) == 3 and not spawn.called
    assert f"--worker-url {url}: answers, but not as an OpenAI-compatible server" in said
    assert "answered HTTP 404: HTML page: " in said and "File not found" in said
    assert re.search(r"<[a-zA-Z/!]", said) is None  # no tag of the page
