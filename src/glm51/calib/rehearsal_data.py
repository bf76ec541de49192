"""Synthetic chat conversations for the tiny model (rehearsal and tests only).

Not calibration data for the real model: the recipe's passes (release/calibration/) are.
These are seeded, mix English and Chinese, code words and a tool-using system prompt, so the
tiny model's routers see varied tokens and every expert gets some.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from glm51.outputs import os_errors, write_text

WORDS = (  # noqa: SIM905 (one readable string)
    "def class return import async await lambda for while if else print list dict tool call "
    "json 函数 调用 工具 result error value index sort merge file path read write test"
).split()
SYSTEM = "You are a coding agent. 你是一个编程助手。"


def conversations(n: int, seed: int, words: int = 40) -> list[dict]:
    rng = random.Random(seed)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": text()},
                {"role": "assistant", "content": text()},
            ]
        }
        for _ in range(n)
    ]


def write_jsonl(path: Path, n: int, seed: int, words: int = 40) -> Path:
    """``n`` conversations, one ``{"messages": [...]}`` per line (what --calib-file reads)."""
    with os_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(c, ensure_ascii=False) for c in conversations(n, seed, words)]
    return write_text(path, "\n".join(lines) + "\n")
