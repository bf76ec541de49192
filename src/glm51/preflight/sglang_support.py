"""The installed SGLang: does it accept the profile's flags and backend choices?"""

from __future__ import annotations

from collections.abc import Sequence

from glm51.preflight.findings import Finding, Severity
from glm51.recipe.serving import Profile, SGLangBuild
from glm51.sglang.flags import effective, parse_passthrough, setting_flags
from glm51.sglang.help import CHECKED, SglangMissing, SglangProbe, install_hint, parse_help


def check(
    profile: Profile,
    build_name: str,
    build: SGLangBuild,
    passthrough: Sequence[str],
    probe: SglangProbe,
) -> list[Finding]:
    fix = install_hint(build_name, build)
    try:
        options = parse_help(probe())
    except SglangMissing as exc:
        return [
            Finding(
                "sglang.missing",
                Severity.ERROR,
                f"cannot read the installed sglang's flags: {exc}",
                fix,
            )
        ]
    if not options.flags:
        return [
            Finding(
                "sglang.help",
                Severity.ERROR,
                "sglang's --help listed no options",
                fix,
            )
        ]
    found: list[Finding] = []
    rendered = setting_flags(profile.server)
    for flag in rendered:
        canonical, candidates = options.resolve(flag)
        if canonical is None:
            what = (
                f"is ambiguous: it could be {', '.join(candidates)}"
                if candidates
                else "is not a flag"
            )
            found.append(
                Finding(
                    "sglang.flag",
                    Severity.ERROR,
                    f"the profile's {flag} {what} of the installed sglang "
                    "(it would refuse to start)",
                    fix
                    if not candidates
                    else f"{fix} (or, if this is that build, rename {flag} in the profile)",
                )
            )
    given = parse_passthrough(passthrough)
    for flag in given:
        if options.resolve(flag)[0] is None:
            found.append(
                Finding(
                    "sglang.flag",
                    Severity.ERROR,
                    f"pass-through {flag} is not a flag of the installed sglang "
                    "(it would refuse to start)",
                    f"check `python -m sglang.launch_server --help`; {fix}",
                )
            )
    for flag in CHECKED:
        value = effective(profile, passthrough, flag)
        canonical = options.resolve(flag)[0]
        if value is None or canonical is None or canonical not in options.choices:
            continue
        allowed = options.choices[canonical]
        if value not in allowed:
            found.append(
                Finding(
                    "sglang.choice",
                    Severity.ERROR,
                    f"the installed sglang does not accept {flag} {value} "
                    f"(its choices: {', '.join(allowed)})",
                    fix,
                )
            )
    return found
