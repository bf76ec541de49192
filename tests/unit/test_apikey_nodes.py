"""The API key's source and its ways into SGLang and the clients; the two-node profile's
commands and preflight."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from glm51.apikey import KeySource, is_loopback, redact
from glm51.bench.run import server_flags
from glm51.cli import app
from glm51.endpoint.client import Endpoint, Unauthorized
from glm51.errors import InputError
from glm51.preflight import gpus
from glm51.serve.launch import Options
from glm51.serve.nodes import placements
from glm51.serve.secret import key_config
from tests.support.cli import error_text, exit_code
from tests.support.fakes import gpu_probe

KEY = "sk-glm51-test-7f3a9c"
MODEL = str(Path(__file__).parent)  # a dry run needs an existing folder, not a checkpoint
TWO_NODE = "rtx-pro-6000-x4-2node"


# ------------------------------------------------------------------------- the key's source


def test_a_key_file_is_read_and_stripped(tmp_path):
    (tmp_path / "key").write_text(KEY + "\n")
    source = KeySource(file=tmp_path / "key")
    assert source.read() == KEY
    assert KEY not in source.describe() and str(tmp_path / "key") in source.describe()


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "does not exist"), ("", "is empty"), ("  \n", "is empty"), ("a b", "whitespace")],
)
def test_a_bad_key_file_is_bad_input_naming_it(tmp_path, content, words):
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        KeySource(file=path).read()
    assert f"--api-key-file {path}" in str(info.value) and words in str(info.value)


def test_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        KeySource(file=tmp_path).read()


def test_the_recipes_variable_holds_the_key_when_no_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("GLM51_TEST_KEY", KEY)
    source = KeySource(env="GLM51_TEST_KEY")
    assert source.given and source.read() == KEY
    assert source.describe() == "the environment variable GLM51_TEST_KEY"
    (tmp_path / "key").write_text("from-the-file")  # a file named wins
    assert KeySource(file=tmp_path / "key", env="GLM51_TEST_KEY").read() == "from-the-file"
    monkeypatch.setenv("GLM51_TEST_KEY", "")
    assert not source.given and source.read() is None and source.describe() == "none"


def test_redact_replaces_every_occurrence():
    assert redact(f"a {KEY} b {KEY}", KEY) == "a <api-key> b <api-key>"
    assert redact("nothing", None) == "nothing"


# ------------------------------------------------------------------ SGLang's --config file


def test_the_config_file_is_private_holds_the_key_as_sglang_reads_it_and_is_removed():
    key = "it's: a #key"  # YAML-significant characters stay verbatim
    with key_config(key) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.suffix == ".yaml"  # SGLang refuses another suffix
        assert yaml.safe_load(path.read_text()) == {"api-key": key}
    assert not path.exists() and not path.parent.exists()
    with key_config(None) as none:
        assert none is None


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert not is_loopback("gpu-node-1")


def _serve(*args):
    return CliRunner().invoke(app, ["serve", "--dry-run", "--model", MODEL, *args])


def test_dry_run_says_where_the_key_comes_from_never_the_key(tmp_path):
    (tmp_path / "key").write_text(KEY)
    result = _serve("--api-key-file", str(tmp_path / "key"))
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert f"from the file {tmp_path / 'key'}" in result.output
    words = shlex.split(result.output.strip().splitlines()[-1])
    assert words[words.index("--config") + 1] == "<private-0600-file-with-api-key>"
    assert "--api-key" not in words


@pytest.mark.parametrize("flag", [["--api-key", KEY], [f"--api-key={KEY}"]])
def test_a_pass_through_api_key_is_refused_without_echoing_it(flag):
    result = _serve("--", *flag)
    assert exit_code(result) == 3, result.output
    assert "pass-through --api-key: the key would be in argv" in error_text(result)
    assert KEY not in result.output


def test_a_pass_through_config_beside_the_keys_is_refused(tmp_path):
    (tmp_path / "key").write_text(KEY)
    result = _serve("--api-key-file", str(tmp_path / "key"), "--", "--config", "mine.yaml")
    assert exit_code(result) == 3, result.output
    assert "pass-through --config: glm51 serve passes the API key" in error_text(result)
    assert _serve("--", "--config", "mine.yaml").exit_code == 0  # no key: the user's own


def test_a_missing_key_file_stops_serve_with_exit_3(tmp_path):
    result = _serve("--api-key-file", str(tmp_path / "nope"))
    assert exit_code(result) == 3
    assert "the API key file does not exist" in error_text(result)


def test_non_loopback_without_a_key_warns(monkeypatch):
    monkeypatch.delenv("GLM51_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "--dry-run", "--model", MODEL, "--host", "0.0.0.0"])
    assert result.exit_code == 0
    assert "binding 0.0.0.0 (not loopback) without an API key" in result.output
    quiet = _serve("--host", "127.0.0.1")
    assert "without an API key" not in quiet.output


def test_the_recipe_can_make_a_keyless_public_bind_an_error(monkeypatch, tmp_path, recipe_text):
    monkeypatch.delenv("GLM51_API_KEY", raising=False)
    strict = tmp_path / "strict.toml"
    strict.write_text(recipe_text.replace("require_api_key = false", "require_api_key = true"))
    _copy_manifests(tmp_path)
    result = _serve("--host", "0.0.0.0", "--recipe", str(strict))
    assert exit_code(result) == 3
    assert "deploy.require_api_key is true" in error_text(result)
    monkeypatch.setenv("GLM51_API_KEY", KEY)  # the recipe's variable: allowed, never shown
    keyed = _serve("--host", "0.0.0.0", "--recipe", str(strict))
    assert keyed.exit_code == 0, keyed.output
    assert KEY not in keyed.output and "the environment variable GLM51_API_KEY" in keyed.output


def _copy_manifests(folder):
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "release" / "calibration", folder / "calibration")


# ----------------------------------------------------------------------- the clients' key


def _endpoint(key_wanted: str, sent: str | None) -> Endpoint:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {key_wanted}":
            return httpx.Response(401, json={"error": "Unauthorized"})
        return httpx.Response(200, json={"data": [{"id": "m"}]})

    headers = {"Authorization": f"Bearer {sent}"} if sent else {}
    client = httpx.Client(transport=httpx.MockTransport(handler), headers=headers)
    return Endpoint("http://gw:8000", "m", client)


def test_the_key_is_sent_as_a_bearer_token():
    assert _endpoint(KEY, KEY).models() == ["m"]


@pytest.mark.parametrize(
    ("sent", "words"), [(None, "no API key was sent"), ("wrong", "a wrong key")]
)
def test_a_401_is_bad_input_naming_the_missing_or_wrong_key(sent, words):
    with pytest.raises(Unauthorized) as info:
        _endpoint(KEY, sent).models()
    assert info.value.exit_code == 3 and words in str(info.value)
    assert KEY not in str(info.value) and "wrong" not in str(info.value).split("(")[0][-8:]


def test_server_info_secrets_are_never_recorded_as_flags():
    info = {"api_key": KEY, "admin_api_key": KEY, "tp_size": 8, "launch_command": f"x {KEY}"}
    assert server_flags(info) == ("--tp-size=8",)


# --------------------------------------------------------------------- the two-node profile


def test_a_two_node_dry_run_prints_each_nodes_command():
    result = _serve("--profile", TWO_NODE, "--dist-init-addr", "10.0.0.1:20000")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    commands = [shlex.split(line) for line in lines if "sglang.launch_server" in line]
    assert len(commands) == 2
    for rank, words in enumerate(commands):
        assert words[words.index("--nnodes") + 1] == "2"
        assert words[words.index("--node-rank") + 1] == str(rank)
        assert words[words.index("--dist-init-addr") + 1] == "10.0.0.1:20000"
        assert words[words.index("--tp") + 1] == "4" and words[words.index("--pp-size") + 1] == "2"
    assert "# node 0 of 2" in lines and "# node 1 of 2" in lines


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--node-rank", "2", "--dist-init-addr", "h:1"], "--node-rank 2: outside --nnodes 2"),
        (["--node-rank", "-1", "--dist-init-addr", "h:1"], "--node-rank -1: outside"),
        (["--nnodes", "3", "--dist-init-addr", "h:1"], "--nnodes 3: profile"),
        (["--node-rank", "0"], "--dist-init-addr: profile"),
        (["--dist-init-addr", "nohost"], "expected HOST:PORT"),
    ],
)
def test_bad_node_options_are_exit_3(args, words):
    result = _serve("--profile", TWO_NODE, *args)
    assert exit_code(result) == 3
    assert words in error_text(result)


@pytest.mark.parametrize("args", [["--nnodes", "1"], ["--node-rank", "0"]])
def test_a_one_node_profile_takes_the_one_node_options_as_they_are(args):
    result = _serve("--profile", "rtx-pro-6000-x8", *args)
    assert result.exit_code == 0, result.output
    assert "--dist-init-addr" not in result.output and "--nnodes" not in result.output


def test_a_real_launch_needs_this_nodes_rank(recipe):
    name, profile = recipe.profile(TWO_NODE)
    with pytest.raises(InputError, match="--node-rank: profile"):
        placements(name, profile, Options(dist_init_addr="h:1"))
    one = placements(name, profile, Options(node_rank=1, dist_init_addr="h:1"))
    assert [(p.node_rank, p.nnodes) for p in one] == [(1, 2)]
    assert placements(*recipe.profile("rtx-pro-6000-x8"), Options()) == [None]


def test_preflight_names_the_node_with_too_few_gpus(recipe):
    _, profile = recipe.profile(TWO_NODE)
    four = gpu_probe("rtx-pro-6000-x4-595")()
    assert [f.check for f in gpus.check(profile, four, node=(1, 2))] == []
    three = gpus.visible(four, "0,1,2")
    (finding,) = [f for f in gpus.check(profile, three, node=(1, 2)) if f.check == "gpu.count"]
    assert finding.message.startswith("node 1 of 2: too few GPUs: found 3")
    assert "needs 4 per node (tp 4 x pp 2)" in finding.message


def test_preflight_names_the_network_variables_a_node_lacks(recipe):
    _, profile = recipe.profile(TWO_NODE)
    (finding,) = gpus.node_env(profile, (0, 2), {"NCCL_SOCKET_IFNAME": "eth0"})
    assert finding.check == "network.env" and finding.severity == "error"
    assert finding.message.startswith("node 0 of 2: GLOO_SOCKET_IFNAME not set")
    both = {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"}
    assert gpus.node_env(profile, (0, 2), both) == []


# --------------------------------------------------------------------- the release's gates


def test_the_gates_container_gets_the_key_by_name_only(recipe, monkeypatch):
    from glm51.release.production import serve_argv

    monkeypatch.delenv("GLM51_API_KEY", raising=False)
    argv = serve_argv(recipe, "reg/glm51@sha256:ab", Path("/models/c"), "gates")
    assert "-e" not in argv
    monkeypatch.setenv("GLM51_API_KEY", KEY)
    argv = serve_argv(recipe, "reg/glm51@sha256:ab", Path("/models/c"), "gates")
    at = argv.index("-e")
    assert argv[at + 1] == "GLM51_API_KEY" and argv.index("reg/glm51@sha256:ab") > at
    assert KEY not in " ".join(argv)


def test_the_gates_smoke_and_bench_send_the_runners_key(recipe, monkeypatch, tmp_path):
    from glm51.release import measure

    seen = {}
    monkeypatch.setattr(measure, "run_smoke", lambda req, *_a, **_k: seen.setdefault("s", req))
    monkeypatch.setattr(measure, "run_bench", lambda req, *_a, **_k: seen.setdefault("b", req))
    monkeypatch.setattr(measure, "smoke_raise_for", lambda _r: None)
    monkeypatch.setattr(measure, "bench_raise_for", lambda _r: None)
    monkeypatch.setenv("GLM51_API_KEY", KEY)

    class Ctx:
        log = staticmethod(lambda _m: None)

        def path(self, name):
            return tmp_path / name

    measure.smoke_and_bench(
        recipe, Ctx(), "http://127.0.0.1:5000", bench=measure.release_bench(recipe)
    )
    assert seen["s"].api_key.read() == KEY and seen["b"].api_key.read() == KEY
