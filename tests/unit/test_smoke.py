"""`glm51 smoke` against the scripted GLM double: all green, and each fault turns exactly the
expected check red with a message that says what went wrong."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from glm51.endpoint.prompts import filler, fit
from glm51.errors import InputError
from glm51.records import SmokeRecord, read_record
from glm51.smoke.checks import gsm8k_answer, gsm8k_items, repeats
from tests.doubles.openai_double import Config, OpenAIDouble
from tests.support.cli import error_text, exit_code

NEEDLES = "2000,6000"  # small contexts: the double's tokens are words


def smoke(url, out, *extra):
    argv = ["smoke", "--endpoint", url, "--out", str(out), "--needle-tokens", NEEDLES, *extra]
    return CliRunner().invoke(app, argv)


def checks(out) -> dict[str, object]:
    record = read_record(out / "smoke.json", SmokeRecord)
    return {c.name: c for c in record.checks}


def test_all_green_against_the_double(tmp_path):
    with OpenAIDouble() as double:
        result = smoke(double.url, tmp_path)
    assert result.exit_code == 0, result.output
    found = checks(tmp_path)
    assert all(c.status == "passed" for c in found.values()), found
    assert {
        "protocol.health",
        "protocol.models",
        "protocol.stream-matches",
        "protocol.last-chunk",
        "glm.reasoning.on",
        "glm.reasoning.off",
        "glm.tools.single",
        "glm.tools.required",
        "glm.tools.none",
        "glm.tools.parallel",
        "glm.tools.streamed",
        "glm.tools.multi-turn",
        "glm.first-token-logprob",
        "glm.needle.2k",
        "glm.needle.6k",
        "glm.gsm8k",
        "glm.accept-length",
        "glm.repetition",
    } == set(found)
    assert found["glm.accept-length"].value == pytest.approx(3.2)
    assert found["glm.gsm8k"].value == 1.0
    # The table names every check; the JUnit file has one case per check, no failure.
    assert "glm.tools.multi-turn" in result.output
    suites = ET.parse(tmp_path / "smoke.xml").getroot()
    assert [s.get("name") for s in suites] == ["glm51.smoke.protocol", "glm51.smoke.glm"]
    assert sum(int(s.get("tests")) for s in suites) == len(found)
    assert not suites.findall(".//failure")


@pytest.mark.parametrize(
    ("fault", "red", "says"),
    [
        ("reasoning-leak", "glm.reasoning.on", "<think> tags leaked into content"),
        ("invalid-tool-json", "glm.tools.streamed", "arguments are not valid JSON"),
        ("flat-first-token", "glm.first-token-logprob", "logprob -11.95 < floor -1.0"),
        ("accept-length-1", "glm.accept-length", "accept length 1.00 < floor 2.0"),
        ("health-503", "protocol.health", "/health answered HTTP 503"),
        ("repetition", "glm.repetition", "the long answer loops"),
        ("one-parallel-call", "glm.tools.parallel", "expected 2 tool call(s), got 1"),
    ],
)
def test_each_fault_turns_exactly_its_check_red(tmp_path, fault, red, says):
    with OpenAIDouble(Config(faults=frozenset({fault}))) as double:
        result = smoke(double.url, tmp_path)
    found = checks(tmp_path)
    failed = {name for name, c in found.items() if c.status == "failed"}
    assert failed == {red}, {n: found[n].message for n in failed}
    assert says in found[red].message
    assert exit_code(result) == 5
    assert red in error_text(result)
    case = ET.parse(tmp_path / "smoke.xml").getroot().find(f".//testcase[@name='{red}']")
    assert says in case.find("failure").get("message")


def test_a_server_dying_mid_stream_fails_that_check_and_skips_the_rest(tmp_path):
    with OpenAIDouble(Config(faults=frozenset({"die-mid-stream"}))) as double:
        result = smoke(double.url, tmp_path, "--timeout", "20")
    found = list(checks(tmp_path).values())
    assert [c.status for c in found[:3]] == ["passed", "passed", "failed"]
    assert found[2].name == "protocol.stream-matches"
    assert "closed the connection mid-answer" in found[2].message
    assert all(c.status == "skipped" for c in found[3:])
    assert "the server went away during protocol.stream-matches" in found[3].message
    assert exit_code(result) == 6  # exit 6: infrastructure, not the model


def test_protocol_tier_alone(tmp_path):
    with OpenAIDouble(Config(faults=frozenset({"accept-length-1"}))) as double:
        result = smoke(double.url, tmp_path, "--tier", "protocol")
    assert result.exit_code == 0, result.output
    assert {c.tier for c in checks(tmp_path).values()} == {"protocol"}


def test_wrong_served_name_is_reported(tmp_path):
    with OpenAIDouble(Config(served_name="other")) as double:
        smoke(double.url, tmp_path, "--tier", "protocol")
    assert "not the served name 'GLM-5.1'" in checks(tmp_path)["protocol.models"].message


def test_no_endpoint_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["smoke", "--out", str(tmp_path)])
    assert exit_code(result) == 3


def test_unreachable_endpoint_fails_every_check_with_the_reason(tmp_path):
    result = smoke("http://127.0.0.1:9", tmp_path, "--tier", "protocol")
    found = checks(tmp_path)
    assert found["protocol.health"].status == "failed"
    assert "cannot connect" in found["protocol.health"].message
    assert exit_code(result) == 6


def test_repetition_detector():
    assert repeats("the cat sat on the mat. " * 30)
    assert "repeated" in repeats("A fine start to an answer, then " + "ab" * 200)
    assert not repeats(" ".join(f"word{i} and other{i * 7}" for i in range(200)))


def test_gsm8k_data_and_answer_parsing():
    items = gsm8k_items()
    assert len(items) >= 16
    assert all("####" in i["answer"] for i in items)
    assert gsm8k_answer("so 3 + 4 = 7.\n#### 1,234") == "1234"
    assert gsm8k_answer("The answer is 42.") == "42"
    # The final number, not the first: worked answers carry their intermediate steps.
    assert gsm8k_answer("She had 3 apples, bought 4 more: 3 + 4 = 7. The answer is 7.") == "7"
    assert gsm8k_answer("12 eggs a day for 7 days is 84; minus 20 leaves 64") == "64"
    assert gsm8k_answer("no number") is None


@pytest.mark.parametrize("target", [9, 10, 57, 1000, 32768])
def test_prompt_sizing_hits_the_exact_token_count(target):
    def build(words, pad):
        return [{"role": "user", "content": filler(words, pad)}]

    def count_chars(messages):  # a character-level tokenizer (the tiny model's)
        return 9 + len(messages[0]["content"])

    def count_words(messages):  # one token per word, the last word split in three-char parts
        text = messages[0]["content"]
        return 12 + len(text.split()) + (len(text.split()[-1]) // 3 if text else 0)

    for count in (count_chars, count_words):
        if target >= count(build(0, 0)):
            sized = fit(count, build, target)
            assert count(sized.messages) == sized.prompt_tokens == target


def test_prompt_shorter_than_the_template_is_refused():
    with pytest.raises(InputError, match="shorter than the template"):
        fit(lambda m: 50, lambda w, p: [{"role": "user", "content": ""}], 10)


def test_record_json_is_typed(tmp_path):
    with OpenAIDouble() as double:
        smoke(double.url, tmp_path, "--tier", "protocol")
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["kind"] == "smoke" and data["schema_version"] == 1
