"""Calibration data: manifests, conversions, filters, deterministic sampling and digests."""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
from pathlib import Path

import pytest

from glm51.calib.conversations import BadRow, rejected, to_chat
from glm51.calib.data import (
    CalibSet,
    build_pass,
    digest_of,
    from_jsonl,
    tokenize_chat,
)
from glm51.calib.manifest import Filters, Source, load_manifest, parse_manifest, record_digest
from glm51.errors import InputError
from tests.conftest import REPO
from tests.support.calib_helpers import chat, make_tokenizer, write_jsonl

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


# -- the release manifests -----------------------------------------------------------------


def test_release_manifests_match_the_recipe_passes(recipe):
    for p in recipe.quantize.passes:
        manifest = load_manifest(recipe.pass_manifest(p.name))
        assert manifest.name == p.name
        assert manifest.samples > 0


def test_broad_draws_gated_wildchat_and_lmsys_with_moderation_filtered(recipe):
    m = load_manifest(recipe.pass_manifest("broad"))
    by_id = {s.dataset: s for s in m.sources}
    assert set(by_id) == {"allenai/WildChat-nontoxic", "lmsys/lmsys-chat-1m"}
    for s in by_id.values():
        assert s.gated and s.column == "conversation" and s.convert == "conversation"
    assert by_id["lmsys/lmsys-chat-1m"].filters.moderation == "openai_moderation"


def test_deep_is_long_and_coding_has_english_and_chinese_system_prompts(recipe):
    assert load_manifest(recipe.pass_manifest("deep")).min_tokens >= 8192
    coding = load_manifest(recipe.pass_manifest("coding"))
    prompts = [p for s in coding.sources for p in s.system_prompts]
    assert any(re.search(r"[\u4e00-\u9fff]", p) for p in prompts)
    assert any(re.fullmatch(r"[ -~]+", p) for p in prompts)
    assert {s.convert for s in coding.sources} >= {"xlam", "sharegpt", "messages"}


def test_unknown_pass_and_bad_manifest_are_input_errors(recipe, tmp_path):
    with pytest.raises(InputError, match=r"no calibration pass 'nope'.*coding"):
        recipe.pass_manifest("nope")
    bad = tmp_path / "m.toml"
    bad.write_text('name = "x"\ndescription = "d"\nseed = 1\nmax_tokens = 5\nmin_tokens = 9\n')
    with pytest.raises(InputError, match=r"m\.toml: invalid manifest"):
        load_manifest(bad)


# -- conversions and filters ---------------------------------------------------------------


def _source(**kw) -> Source:
    return Source.model_validate(
        {"name": "s", "dataset": "d/x", "revision": "main", "samples": 1, **kw}
    )


def test_conversation_column_becomes_messages_without_metadata():
    row = {
        "conversation": [
            {"role": "user", "content": "hi", "language": "English", "toxic": False},
            {"role": "assistant", "content": "hello", "redacted": False, "turn_identifier": 3},
        ]
    }
    messages, tools = to_chat(row, _source(column="conversation", convert="conversation"))
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert tools is None


def test_sharegpt_function_calls_and_xlam_become_tool_calls():
    row = {
        "conversations": [
            {"from": "human", "value": "天气?"},
            {
                "from": "function_call",
                "value": '{"name": "get_weather", "arguments": {"city": "北京"}}',
            },
            {"from": "observation", "value": "晴"},
            {"from": "gpt", "value": "晴天"},
        ],
        "tools": '[{"name": "get_weather", "parameters": {}}]',
    }
    src = _source(column="conversations", convert="sharegpt", tools_column="tools")
    messages, tools = to_chat(row, src)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "北京"},
    }
    assert tools == [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    xlam = {"query": "q", "answers": '[{"name": "f", "arguments": {"a": 1}}]', "tools": "[]"}
    messages, _ = to_chat(xlam, _source(convert="xlam", tools_column="tools"))
    assert messages[1]["tool_calls"][0]["function"]["name"] == "f"
    with pytest.raises(BadRow, match="no column 'conversation'"):
        to_chat({"messages": []}, _source(column="conversation", convert="conversation"))


def test_moderation_flag_and_boolean_filters():
    f = Filters(moderation="openai_moderation", drop_if_true=("redacted",))
    clean = {"openai_moderation": [{"flagged": False}, {"flagged": False}], "redacted": False}
    assert rejected(clean, f) is None
    assert (
        rejected({**clean, "openai_moderation": [{"flagged": False}, {"flagged": True}]}, f)
        == "moderation"
    )
    assert rejected({**clean, "redacted": True}, f) == "redacted"
    assert rejected(clean, Filters(languages=("Chinese",))) == "language"


# -- CalibSet and its digest -------------------------------------------------------------------


def test_digest_is_sha256_of_length_prefixed_uint32_ids():
    expected = hashlib.sha256(
        struct.pack("<I", 2)
        + struct.pack("<2I", 1, 2)
        + struct.pack("<I", 1)
        + struct.pack("<I", 3)
    ).hexdigest()
    assert digest_of([[1, 2], [3]]) == expected
    assert digest_of([[1], [2, 3]]) != expected  # sample boundaries are part of the digest
    assert CalibSet("x", [[1, 2], [3]]).digest == expected


def test_chunks_are_deterministic_cover_the_set_and_carry_their_own_digests():
    calib = CalibSet("p", [[i, i + 1] for i in range(7)])
    parts = calib.chunks(3)
    assert [len(p) for p in parts] == [3, 2, 2]
    assert [s for p in parts for s in p.samples] == calib.samples
    assert [p.name for p in parts] == ["p.1of3", "p.2of3", "p.3of3"]
    assert [p.digest for p in parts] == [digest_of(p.samples) for p in calib.chunks(3)]
    assert len({p.digest for p in parts}) == 3
    with pytest.raises(InputError, match="cannot split 7 samples into 8"):
        calib.chunks(8)


def test_calibset_saves_and_loads_with_its_digest_checked(tmp_path):
    calib = CalibSet("p", [[5, 6, 7], [154879]])
    path = calib.save(tmp_path / "p.npz")
    again = CalibSet.load(path)
    assert again.samples == calib.samples and again.digest == calib.digest and again.name == "p"
    assert again.tokens == 4 and again.max_len == 3


# -- from_jsonl --------------------------------------------------------------------------------


def test_from_jsonl_applies_the_chat_template_and_truncates(tmp_path, tok):
    path = write_jsonl(tmp_path / "a.jsonl", [{"messages": chat(i)} for i in range(3)])
    calib = from_jsonl([path], tok, max_length=10_000)
    assert len(calib) == 3 and calib.name == "local"
    assert calib.samples[0] == tokenize_chat(tok, chat(0))
    assert tok.decode(calib.samples[0]).startswith("[gMASK]<sop><|user|>")
    short = from_jsonl(path, tok, max_length=5, name="cut")
    assert [len(s) for s in short.samples] == [5, 5, 5]
    assert from_jsonl(path, tok, max_length=10_000).digest == calib.digest


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", r"b\.jsonl:2: not valid JSON"),
        ('{"text": "hi"}', r"b\.jsonl:2: expected an object with a 'messages' list"),
        (
            '{"messages": [{"role": "robot", "content": "x"}]}',
            r"b\.jsonl:2: message 0: role 'robot'",
        ),
    ],
)
def test_bad_jsonl_lines_name_file_and_line(tmp_path, tok, line, expected):
    path = tmp_path / "b.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "ok"}]}\n' + line + "\n")
    with pytest.raises(InputError, match=expected):
        from_jsonl([path], tok, max_length=100)


def test_empty_jsonl_is_an_error(tmp_path, tok):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no records"):
        from_jsonl([tmp_path / "e.jsonl"], tok, max_length=100)
    with pytest.raises(InputError, match="no calibration files"):
        from_jsonl([], tok, max_length=100)


# -- build_pass from local files -----------------------------------------------------------------

MANIFEST = """\
name = "broad"
description = "test pass"
seed = {seed}
min_tokens = 20
max_tokens = 120

[[sources]]
name = "chat"
dataset = "org/chat"
revision = "main"
gated = true
column = "conversation"
convert = "conversation"
samples = 6
filters = {{ moderation = "openai_moderation" }}

[[sources]]
name = "tools"
dataset = "org/tools"
revision = "0123456789abcdef0123456789abcdef01234567"
column = "conversations"
convert = "sharegpt"
tools_column = "tools"
system_prompts = ["SYSTEM-EN", "SYSTEM-ZH 你好"]
samples = 3
"""


def _conversation_row(i: int, *, flagged: bool = False, words: int = 6) -> dict:
    marker = "FLAGGED" if flagged else "fine"
    return {
        "conversation": [
            {"role": "user", "content": f"{marker} {i} " + "w " * words, "toxic": False},
            {"role": "assistant", "content": f"reply {i}", "redacted": False},
        ],
        "openai_moderation": [{"flagged": flagged}, {"flagged": False}],
    }


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    rows = [_conversation_row(i) for i in range(12)]
    rows += [_conversation_row(100 + i, flagged=True) for i in range(10)]
    rows += [_conversation_row(200, words=400)]  # far over max_tokens
    rows += [{"conversation": [{"role": "user", "content": "x"}], "openai_moderation": []}]  # short
    write_jsonl(d / "chat.jsonl", rows)
    tools = '[{"name": "lookup", "parameters": {}}]'
    write_jsonl(
        d / "tools.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": f"look up item {i}"},
                    {
                        "from": "function_call",
                        "value": f'{{"name": "lookup", "arguments": {{"id": {i}}}}}',
                    },
                    {"from": "observation", "value": f"item {i} found"},
                    {"from": "gpt", "value": "done"},
                ],
                "tools": tools,
            }
            for i in range(5)
        ],
    )
    return d


def _manifest(tmp_path: Path, seed: int = 7, name: str = "broad.toml") -> Path:
    path = tmp_path / name
    path.write_text(MANIFEST.format(seed=seed))
    return path


def test_build_pass_filters_converts_and_samples(tmp_path, data_dir, tok):
    calib = build_pass(_manifest(tmp_path), tok, data_dir=data_dir)
    assert calib.name == "broad" and len(calib) == 9
    texts = [tok.decode(s) for s in calib.samples]
    assert not any("FLAGGED" in t for t in texts)  # moderation-flagged rows never drawn
    assert all(20 <= len(s) <= 120 for s in calib.samples)  # length window holds
    assert sum("fine" in t for t in texts) == 6
    tool_texts = [t for t in texts if "<tool_call>lookup" in t]
    assert len(tool_texts) == 3
    assert all("SYSTEM-EN" in t or "SYSTEM-ZH 你好" in t for t in tool_texts)
    assert all("# Tools" in t for t in tool_texts)


def test_same_seed_same_digest_other_seed_other_digest(tmp_path, data_dir, tok):
    a = build_pass(_manifest(tmp_path, seed=7), tok, data_dir=data_dir)
    b = build_pass(_manifest(tmp_path, seed=7, name="again.toml"), tok, data_dir=data_dir)
    c = build_pass(_manifest(tmp_path, seed=8, name="other.toml"), tok, data_dir=data_dir)
    assert a.samples == b.samples and a.digest == b.digest
    assert a.digest != c.digest


def test_recorded_digest_is_checked(tmp_path, data_dir, tok):
    path = _manifest(tmp_path)
    digest = build_pass(path, tok, data_dir=data_dir).digest
    assert record_digest(path, digest) is True
    assert record_digest(path, digest) is False
    assert load_manifest(path).sha256 == digest
    assert "[[sources]]" in path.read_text()  # layout kept, key placed at top level
    build_pass(path, tok, data_dir=data_dir)  # matches: no error

    wrong = "0" * 64
    record_digest(path, wrong)
    with pytest.raises(InputError) as err:
        build_pass(path, tok, data_dir=data_dir)
    assert str(path) in str(err.value) and digest in str(err.value) and wrong in str(err.value)
    assert build_pass(path, tok, data_dir=data_dir, check=False).digest == digest


def test_too_few_rows_and_missing_files_are_input_errors(tmp_path, data_dir, tok):
    text = MANIFEST.format(seed=1).replace("samples = 6", "samples = 50")
    (tmp_path / "big.toml").write_text(text)
    with pytest.raises(InputError, match=r"source 'chat' gave 12 of 50 samples.*moderation"):
        build_pass(tmp_path / "big.toml", tok, data_dir=data_dir)
    with pytest.raises(InputError, match="no data for source 'chat'"):
        build_pass(_manifest(tmp_path), tok, data_dir=tmp_path / "nothing")


def test_malformed_rows_are_skipped_and_reported(tmp_path, tok):
    d = tmp_path / "d"
    write_jsonl(d / "chat.jsonl", [{"text": "no conversation"}] * 3)
    write_jsonl(d / "tools.jsonl", [])
    with pytest.raises(InputError, match=r"gave 0 of 6.*first malformed row \d+: no moderation"):
        build_pass(_manifest(tmp_path), tok, data_dir=d)


# -- the CLI -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_calib_cli_records_then_builds(tmp_path, data_dir, tok):
    from typer.testing import CliRunner

    from glm51.cli import app

    shutil.copy(REPO / "release" / "glm51.toml", tmp_path / "glm51.toml")
    (tmp_path / "calibration").mkdir()
    for name in ("coding", "broad", "deep"):
        (tmp_path / "calibration" / f"{name}.toml").write_text(
            MANIFEST.format(seed=3).replace('name = "broad"', f'name = "{name}"', 1)
        )
    tok.save_pretrained(tmp_path / "tok")
    common = ["--data-dir", str(data_dir), "--tokenizer", str(tmp_path / "tok")]
    common += ["--recipe", str(tmp_path / "glm51.toml")]
    runner = CliRunner()
    result = runner.invoke(app, ["calib", "record", "broad", *common])
    assert result.exit_code == 0, result.output
    assert "recorded" in result.output
    result = runner.invoke(
        app, ["calib", "build", "broad", "--output", str(tmp_path / "b.npz"), *common]
    )
    assert result.exit_code == 0, result.output
    calib = CalibSet.load(tmp_path / "b.npz")
    assert calib.digest == load_manifest(tmp_path / "calibration" / "broad.toml").sha256
    assert parse_manifest((tmp_path / "calibration" / "coding.toml").read_text()).sha256 is None


def test_hub_sources_load_the_pinned_revision_with_a_token_when_gated(tmp_path, tok, monkeypatch):
    import sys
    import types

    calls = []
    rows = {"org/chat": [_conversation_row(i) for i in range(8)], "org/tools": []}

    def load_dataset(path, *, name, revision, split, token):
        calls.append((path, revision, split, token))
        if path == "org/tools":
            return [
                {
                    "conversations": [{"from": "human", "value": f"hi {i} " + "w " * 8}],
                    "tools": None,
                }
                for i in range(4)
            ]
        return rows[path]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("glm51.calib.data.require_hub", lambda what, alternative: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    build_pass(_manifest(tmp_path), tok)
    assert calls == [
        ("org/chat", "main", "train", True),  # gated: use the logged-in token
        ("org/tools", "0123456789abcdef0123456789abcdef01234567", "train", None),
    ]
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(InputError, match=r"install glm51\[calib-hub\]"):
        build_pass(_manifest(tmp_path), tok)


def test_tool_call_arguments_given_as_json_strings_become_objects(tok):
    row = {
        "conversations": [
            {"from": "human", "value": "find it"},
            {"from": "function_call", "value": '{"name": "f", "arguments": "{\\"q\\": 1}"}'},
        ]
    }
    messages, _ = to_chat(row, _source(column="conversations", convert="sharegpt"))
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"q": 1}
    assert "<arg_key>q</arg_key>" in tok.decode(tokenize_chat(tok, messages))


def test_local_json_arrays_and_non_utf8_files(tmp_path, data_dir, tok):
    import json

    rows = [json.loads(line) for line in (data_dir / "chat.jsonl").read_text().splitlines()]
    (data_dir / "chat.jsonl").unlink()
    (data_dir / "chat.json").write_text(json.dumps(rows))
    assert len(build_pass(_manifest(tmp_path), tok, data_dir=data_dir)) == 9
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"messages": [{"role": "user", "content": "ok"}]}\n\xff\xfe\n')
    with pytest.raises(InputError, match=r"latin1\.jsonl:\d+: not UTF-8"):
        from_jsonl(bad, tok, max_length=10)


def test_the_wheel_ships_the_manifests_beside_the_recipe():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["release/calibration"] == "glm51/_data/calibration"
    assert include["release/glm51.toml"] == "glm51/_data/glm51.toml"


def test_a_sources_draw_does_not_depend_on_the_other_sources(tmp_path, data_dir, tok):
    both = build_pass(_manifest(tmp_path), tok, data_dir=data_dir)
    alone = tmp_path / "alone.toml"
    alone.write_text(MANIFEST.format(seed=7).split('[[sources]]\nname = "tools"')[0])
    chat_only = build_pass(alone, tok, data_dir=data_dir)
    assert len(chat_only) == 6
    assert all(s in both.samples for s in chat_only.samples)


def test_manifest_errors_name_the_key_and_the_allowed_values(tmp_path):
    text = MANIFEST.format(seed=1).replace('convert = "sharegpt"', 'convert = "alpaca"')
    with pytest.raises(InputError) as err:
        parse_manifest(text, tmp_path / "x.toml")
    message = str(err.value)
    assert "x.toml: invalid manifest" in message and "sources.1.convert" in message
    assert "'sharegpt'" in message and "'xlam'" in message
    with pytest.raises(InputError, match=r"sources\.0\.colour: unknown key"):
        parse_manifest(text.replace('column = "conversation"', 'colour = "x"', 1))


def test_release_revisions_are_commits_or_refs_to_pin(recipe):
    for name in ("coding", "broad", "deep"):
        for source in load_manifest(recipe.pass_manifest(name)).sources:
            assert source.pinned or re.fullmatch(r"[A-Za-z0-9._/-]+", source.revision)
    deep = load_manifest(recipe.pass_manifest("deep"))
    assert all(s.pinned for s in deep.sources)


def test_hub_sources_fail_fast_offline_and_name_the_local_alternative(tmp_path, tok, monkeypatch):
    import sys
    import types

    from glm51.errors import InfraError

    loaded = []
    fake = types.SimpleNamespace(load_dataset=lambda *a, **k: loaded.append(a) or [])
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(InfraError, match=r"HF_HUB_OFFLINE is set; pass --data-dir") as info:
        build_pass(_manifest(tmp_path), tok)
    assert info.value.exit_code == 6 and "org/chat" in str(info.value)
    assert loaded == []  # the library was never asked


def test_calib_build_says_whether_the_digest_was_checked(tmp_path, data_dir, tok):
    """A manifest without a recorded sha256 is not silently 'checked'."""
    from typer.testing import CliRunner

    from glm51.cli import app

    release = tmp_path / "release"
    shutil.copytree(REPO / "release", release)
    manifest = release / "calibration" / "broad.toml"
    manifest.write_text(MANIFEST.format(seed=7))
    tok.save_pretrained(tmp_path / "tok")
    argv = [
        "calib",
        "build",
        "broad",
        "--output",
        str(tmp_path / "broad.npz"),
        "--data-dir",
        str(data_dir),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--recipe",
        str(release / "glm51.toml"),
    ]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert f"NOT checked: {manifest} records no sha256 yet" in said

    record_digest(manifest, CalibSet.load(tmp_path / "broad.npz").digest)
    refused = CliRunner().invoke(app, argv)  # the set is there: never written over
    assert refused.exit_code == 3 and "exists" in refused.output
    (tmp_path / "broad.npz").unlink()
    second = CliRunner().invoke(app, argv)
    assert second.exit_code == 0 and "(matches the manifest)" in second.output
