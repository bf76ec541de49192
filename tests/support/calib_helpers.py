"""Test scaffolding for calibration data: an offline tokenizer with a GLM-style chat template,
and JSONL fixture writers. Nothing here is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glm51.quantize.tiny import CHAT_TEMPLATE

# GLM-4.5/5 layout ([gMASK]<sop>, role tags, tools in a system turn, tool calls as
# <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>): the tiny model's.
GLM_CHAT_TEMPLATE = CHAT_TEMPLATE
SPECIAL = [
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "<tool_response>",
    "</tool_response>",
    "<|endoftext|>",
]
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Write a Python function that reverses a string and test it.",
    "What is the weather in Paris? Call get_weather with the city.",
    "你是一个编程助手。请调用提供的工具来完成用户的任务。",
    "The quick brown fox jumps over the lazy dog. " * 3,
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
]


def make_tokenizer():
    """A byte-level BPE (no unknown tokens) trained on a few lines, wrapped as a transformers
    fast tokenizer with the GLM-style chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, chat_template=GLM_CHAT_TEMPLATE, eos_token="<|endoftext|>"
    )


def chat(i: int, words: int = 6) -> list[dict[str, str]]:
    """A small distinct conversation; `words` sets its length."""
    text = " ".join(f"word{i}_{j}" for j in range(words))
    return [
        {"role": "user", "content": f"Question {i}: {text}"},
        {"role": "assistant", "content": f"Answer {i}."},
    ]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path
