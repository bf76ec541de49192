"""`glm51 smoke` as one library call: a request, checked once, run against a served endpoint;
the record and the JUnit file written; a failed check raised as GateFailed, a server that went
away as InfraError. The CLI and the release both call `run_smoke`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glm51.apikey import KeySource
from glm51.endpoint.client import Endpoint, base_url, sync_client
from glm51.errors import GateFailed, InfraError, InputError
from glm51.outputs import claim_output_folder, write_text
from glm51.recipe.schema import Recipe
from glm51.records import SmokeCheck, SmokeRecord, write_record
from glm51.smoke.checks import Context, all_checks
from glm51.smoke.run import junit_xml, run_checks

TIERS = ("protocol", "glm")


@dataclass(frozen=True, kw_only=True)
class SmokeRequest:
    endpoint: str  # the server's base URL
    out_dir: Path = Path("out/smoke")
    tiers: tuple[str, ...] = TIERS
    served_name: str | None = None  # None: the recipe's served_name
    needle_tokens: tuple[int, ...] | None = None  # None: the recipe's
    max_tokens: int = 1024
    gsm8k_items: int | None = None  # None: the recipe's
    timeout_s: float = 600.0
    api_key: KeySource = field(default_factory=KeySource)  # where the key comes from, if any

    def check(self) -> None:
        """Every option, before any request (each refusal names its option)."""
        bad = set(self.tiers) - set(TIERS)
        if bad or not self.tiers:
            raise InputError(f"--tier: unknown {sorted(bad)}; expected protocol or glm")
        if self.needle_tokens is not None and (
            not self.needle_tokens or min(self.needle_tokens) < 1
        ):
            raise InputError(
                f"--needle-tokens {','.join(map(str, self.needle_tokens))!r}: expected sizes of "
                "at least 1 token"
            )
        for option, value in (
            ("--max-tokens", self.max_tokens),
            ("--gsm8k-items", self.gsm8k_items),
        ):
            if value is not None and value < 1:
                raise InputError(f"{option} {value}: expected at least 1")
        if self.timeout_s <= 0:
            raise InputError(f"--timeout {self.timeout_s}: expected more than 0 seconds")
        base_url(self.endpoint)  # bad input (exit 3), not a server that failed
        self.api_key.read()  # a missing or empty key file: exit 3 before any request
        claim_output_folder(self.out_dir, option="--out", command="smoke", create=False)


def run_smoke(
    req: SmokeRequest,
    recipe: Recipe,
    *,
    log: Callable[[str], None] = lambda _: None,
    on_done: Callable[[SmokeCheck], None] = lambda _: None,
) -> SmokeRecord:
    """Run the checks, write OUT/smoke.json and OUT/smoke.xml, then raise for what failed."""
    req.check()
    name = req.served_name or recipe.model.served_name
    url = base_url(req.endpoint)
    with sync_client(req.timeout_s, req.api_key.read()) as http:
        endpoint = Endpoint(url, name, http)
        endpoint.check_access()  # a missing or wrong key (401) is exit 3, before any check
        ctx = Context(
            endpoint=endpoint,
            served_name=name,
            floors=recipe.smoke,
            needle_tokens=req.needle_tokens or recipe.smoke.needle_tokens,
            max_tokens=req.max_tokens,
            gsm8k_items=req.gsm8k_items,
        )
        log(f"glm51 smoke: {url} ({name}), tiers {', '.join(req.tiers)}")
        record = run_checks(ctx, all_checks(ctx.needle_tokens), tiers=req.tiers, on_done=on_done)
    claim_output_folder(req.out_dir, option="--out", command="smoke")
    write_record(record, req.out_dir / "smoke.json")
    write_text(req.out_dir / "smoke.xml", junit_xml(record))
    log(f"glm51 smoke: wrote {req.out_dir / 'smoke.json'} and {req.out_dir / 'smoke.xml'}")
    return record


def raise_for(record: SmokeRecord) -> None:
    """A server that went away is the machine's failure (6); a failed check the model's (5)."""
    failed = [c.name for c in record.checks if c.status == "failed"]
    skipped = [c for c in record.checks if c.status == "skipped"]
    if skipped and skipped[0].message.startswith("not run: the server went away"):
        raise InfraError(
            f"{skipped[0].message.removeprefix('not run: ')}; {len(failed)} check(s) failed: "
            f"{', '.join(failed)}"
        )
    if failed:
        raise GateFailed(f"{len(failed)} smoke check(s) failed: {', '.join(failed)}")
