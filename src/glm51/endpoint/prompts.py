"""Prompts of a given token length, sized against the server's own `usage.prompt_tokens`.

The client has no tokenizer: it builds filler text, asks the server what it counts
(a one-token completion), and adjusts, first by words, then by single characters. With
prefix caching the repeated probes cost little more than the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from glm51.errors import InfraError, InputError

WORDS = (
    "amber",
    "basil",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "glade",
    "harbor",
    "island",
    "juniper",
    "kettle",
    "lantern",
    "meadow",
    "nectar",
    "orchard",
    "pebble",
    "quarry",
    "river",
    "saddle",
    "timber",
    "umber",
    "valley",
    "willow",
    "yonder",
    "zephyr",
)

Messages = list[dict[str, str]]


def filler(words: int, pad: int = 0, *, offset: int = 0) -> str:
    """`words` words of varied filler, then `pad` single characters."""
    text = " ".join(WORDS[(offset + i * 7) % len(WORDS)] for i in range(words))
    return text + "x" * pad


@dataclass(frozen=True)
class SizedPrompt:
    messages: Messages
    prompt_tokens: int  # what the server counted for `messages`
    probes: int


def fit(
    count: Callable[[Messages], int],
    build: Callable[[int, int], Messages],
    target: int,
    *,
    exact: bool = True,
    max_probes: int = 12,
) -> SizedPrompt:
    """Find (words, pad) so that `count(build(words, pad))` is `target` (exactly, or within 2%).

    `count` returns the server's prompt_tokens; `build(words, pad)` the messages.
    """
    probes = 0

    def probe(words: int, pad: int) -> int:
        nonlocal probes
        probes += 1
        return count(build(words, pad))

    base = probe(0, 0)
    if target < base:
        raise InputError(f"a prompt of {target} tokens is shorter than the template alone ({base})")
    if target == base:
        return SizedPrompt(build(0, 0), base, probes)
    # Two points give the tokens per word; then steps on the word count from below.
    words = max(1, (target - base) // 2)
    got = probe(words, 0)
    per_word = max((got - base) / words, 1e-3)

    def close(n: int) -> bool:
        return n == target or (not exact and abs(n - target) <= 0.02 * target)

    while probes < max_probes and not close(got):
        if got < target and target - got < per_word:
            break  # just below: pad with characters
        if got > target:
            words = max(0, words - math.ceil((got - target) / per_word))
        else:
            words += max(1, math.floor((target - got) / per_word))
        got = probe(words, 0)
    pad = 0
    while probes < max_probes and not close(got):
        pad = max(0, pad + target - got)  # a character is about one token
        got = probe(words, pad)
    if got == target or (not exact and abs(got - target) <= 0.02 * target):
        return SizedPrompt(build(words, pad), got, probes)
    raise InfraError(
        f"could not build a prompt of exactly {target} tokens in {probes} probes "
        f"(closest: {got}); the server's token counts are not monotone in the text"
    )
