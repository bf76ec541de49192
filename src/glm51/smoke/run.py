"""Run the smoke checks against an endpoint and collect a `SmokeRecord`.

A failed request fails its check with the server's words. When the server is gone (the
request was refused or cut and /health no longer answers), the remaining checks are
skipped with that reason instead of each failing on the same dead socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from xml.sax.saxutils import quoteattr

from glm51 import __version__
from glm51.endpoint.client import EndpointError, ServerGone
from glm51.records.smoke import SmokeCheck, SmokeRecord
from glm51.smoke.checks import Check, Context, Red

Tier = str


def run_checks(
    ctx: Context,
    checks: Iterable[Check],
    *,
    tiers: Iterable[Tier] = ("protocol", "glm"),
    on_done: Callable[[SmokeCheck], None] = lambda _c: None,
) -> SmokeRecord:
    tiers = set(tiers)
    results: list[SmokeCheck] = []
    gone: str | None = None
    for check in checks:
        if check.tier not in tiers:
            continue
        if gone is not None:
            result = SmokeCheck(name=check.name, tier=check.tier, status="skipped", message=gone)
        else:
            result, died = _run_one(ctx, check)
            if died:
                gone = f"not run: the server went away during {check.name}"
        results.append(result)
        on_done(result)
    return SmokeRecord(
        glm51_version=__version__,
        endpoint=ctx.endpoint.url,
        served_model=ctx.served_name,
        checks=tuple(results),
    )


def _run_one(ctx: Context, check: Check) -> tuple[SmokeCheck, bool]:
    start = time.monotonic()
    died = False
    try:
        outcome = check.run(ctx)
        status, message, value, floor = "passed", outcome.message, outcome.value, outcome.floor
    except Red as red:
        status, message, value, floor = "failed", str(red), red.value, red.floor
    except EndpointError as exc:
        status, message, value, floor = "failed", f"request failed: {exc}", None, None
        died = isinstance(exc, ServerGone) and not _alive(ctx)
    result = SmokeCheck(
        name=check.name,
        tier=check.tier,
        status=status,
        message=message,  # type: ignore[arg-type]
        value=value,
        floor=floor,
        seconds=round(time.monotonic() - start, 3),
    )
    return result, died


def _alive(ctx: Context) -> bool:
    try:
        ctx.endpoint.health()
    except EndpointError:
        return False
    return True


def junit_xml(record: SmokeRecord) -> str:
    """JUnit XML: one testsuite per tier, one testcase per check."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for tier in ("protocol", "glm"):
        cases = [c for c in record.checks if c.tier == tier]
        if not cases:
            continue
        failures = sum(c.status == "failed" for c in cases)
        skipped = sum(c.status == "skipped" for c in cases)
        seconds = sum(c.seconds for c in cases)
        lines.append(
            f'  <testsuite name="glm51.smoke.{tier}" tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="{skipped}" time="{seconds:.3f}">'
        )
        for c in cases:
            head = (
                f'    <testcase classname="glm51.smoke.{tier}" name={quoteattr(c.name)} '
                f'time="{c.seconds:.3f}"'
            )
            if c.status == "passed":
                lines.append(f"{head}><system-out>{_text(c.message)}</system-out></testcase>")
            elif c.status == "failed":
                lines.append(
                    f"{head}><failure message={quoteattr(c.message)}>{_text(c.message)}"
                    "</failure></testcase>"
                )
            else:
                lines.append(f"{head}><skipped message={quoteattr(c.message)}/></testcase>")
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
