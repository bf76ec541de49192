"""The CLI vocabulary (glm51/options.py): renamed flags still work for one release and say
so; the table of renamed flags names real commands and options; one meaning per flag name."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from glm51.cli import app
from glm51.options import RENAMED, respell


def _commands():
    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield from (
                walk(sub, [*path, name])
                if hasattr(sub, "commands")
                else [(" ".join([*path, name]), sub)]
            )

    return dict(walk(typer.main.get_command(app), []))


def _flags(command) -> set[str]:
    return {o for p in command.params if p.param_type_name == "option" for o in p.opts}


def test_respell_replaces_old_spellings_up_to_a_bare_double_dash(capsys):
    args = ["--samples", "2", "--samples=3", "x", "--", "--samples"]
    assert respell("verify", {"--samples": "--experts"}, args) == [
        "--experts",
        "2",
        "--experts=3",
        "x",
        "--",
        "--samples",
    ]
    said = capsys.readouterr().err
    assert said.count("--samples is deprecated") == 1 and "use --experts" in said
    assert respell("verify", {"--samples": "--experts"}, ["--samplesx"]) == ["--samplesx"]


def test_every_renamed_flag_names_a_command_its_new_spelling_and_no_longer_its_old():
    commands = _commands()
    for path, renamed in RENAMED.items():
        assert path in commands, path
        flags = _flags(commands[path])
        for old, new in renamed.items():
            assert new in flags and old not in flags, (path, old, new)


def test_an_old_spelling_warns_and_works(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    args = ["publish", str(checkpoint), "--repo", "o/r", "--version", "v1.0.0", "--dry-run"]
    done = CliRunner().invoke(app, [*args, "--endpoint", "hub.example.com"])
    assert done.exit_code == 3, done.output
    assert "glm51 publish: --endpoint is deprecated and will be removed; use --hub-endpoint" in (
        done.output
    )
    assert "--hub-endpoint (HF_ENDPOINT) 'hub.example.com': expected an http(s) URL" in (
        done.output
    )


def test_flags_show_no_type_in_help():
    done = CliRunner().invoke(app, ["verify", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    line = next(x for x in done.output.splitlines() if "--write" in x)
    assert "<bool>" not in line and "boolean" not in line
    threads = next(x for x in done.output.splitlines() if "--threads" in x)
    assert "<int" in threads or "integer" in threads.lower()  # a value option shows its type
    for group in ([], ["image"], ["calib"], ["recipe"]):  # glm51's own flags, and --help
        done = CliRunner().invoke(app, [*group, "--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0 and "--help" in done.output, group
        assert "<bool>" not in done.output, group


def test_one_meaning_per_flag_name():
    """Each flag's help is the same wherever it is declared, but for the options whose help
    names the command's own file or default (same meaning, the command's words)."""
    alike_in_meaning = {"--out", "--output", "-o", "--model", "--profile", "--max-tokens", "--seed"}
    alike_in_meaning |= {"--version"}  # the release version (image tags: without its v)
    alike_in_meaning |= {"--dry-run", "--json", "--data-dir", "--overwrite", "--ready-timeout"}
    # the address this command listens on (serve, router); the model name; the image record
    alike_in_meaning |= {"--host", "--port", "--served-name", "--image-record"}
    # the BF16 source, the NVFP4 checkpoint, a torch device, which gate set (release|rehearsal)
    alike_in_meaning |= {"--source", "--checkpoint", "--device", "--gates"}
    helps: dict[str, set[str]] = {}
    for command in _commands().values():
        for p in command.params:
            if p.param_type_name == "option" and not p.hidden:
                for o in p.opts:
                    helps.setdefault(o, set()).add(p.help or "")
    differing = {o for o, h in helps.items() if len(h) > 1} - alike_in_meaning
    assert differing == set(), {o: helps[o] for o in differing}


def test_an_old_spelling_names_the_command_however_glm51_was_started(tmp_path):
    """`python -m glm51 verify` (how the release and the tests start it) warns as
    `glm51 verify`, not as `glm51 -m glm51 verify`."""
    done = CliRunner().invoke(
        app, ["verify", str(tmp_path / "absent"), "--samples", "2"], prog_name="python -m glm51"
    )
    assert "glm51 verify: --samples is deprecated" in done.output, done.output
    assert "-m glm51" not in done.output, done.output
