"""Dataset rows -> chat `messages` (+ tools), and the row filters.

Every source ends up as what the model's chat template takes: a list of
`{"role", "content"}` dicts (assistant turns may carry `tool_calls`) and an optional list
of tool definitions. A row that cannot be converted raises `BadRow`; the builder skips and
counts it, so one odd row in a million does not stop a release.
"""

from __future__ import annotations

import json
from typing import Any

from glm51.calib.manifest import Filters, Source

Message = dict[str, Any]
ROLES = frozenset({"system", "user", "assistant", "tool"})
_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


class BadRow(ValueError):
    """This row does not have the shape its source's conversion expects."""


def check_messages(messages: Any) -> list[Message]:
    """A non-empty list of {role, content} with known roles; returns clean copies."""
    if not isinstance(messages, list) or not messages:
        raise BadRow("expected a non-empty list of messages")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRow(f"message {i}: expected an object with 'role' and 'content'")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise BadRow(f"message {i}: role {role!r} is not one of {sorted(ROLES)}")
        if not isinstance(content, str) and not (content is None and msg.get("tool_calls")):
            raise BadRow(f"message {i}: expected a string 'content'")
        clean: Message = {"role": role, "content": content if content is not None else ""}
        if msg.get("tool_calls"):
            clean["tool_calls"] = msg["tool_calls"]
        out.append(clean)
    return out


def _json(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadRow(f"{what}: not valid JSON ({exc.msg})") from None
    return value


def _tool_call(name: str, arguments: Any) -> dict[str, Any]:
    # GLM's template iterates `arguments.items()`: give it an object, not a JSON string.
    if isinstance(arguments, str) and arguments.strip().startswith("{"):
        arguments = _json(arguments, f"arguments of {name}")
    return {"type": "function", "function": {"name": name, "arguments": arguments or {}}}


def _from_sharegpt(turns: Any) -> list[Message]:
    if not isinstance(turns, list):
        raise BadRow("expected a list of {from, value} turns")
    out: list[Message] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in _SHAREGPT_ROLES:
            raise BadRow(
                f"turn {i}: expected {{from, value}} with from in {sorted(_SHAREGPT_ROLES)}"
            )
        value = turn.get("value")
        if not isinstance(value, str):
            raise BadRow(f"turn {i}: expected a string 'value'")
        if turn["from"] == "function_call":
            call = _json(value, f"turn {i}")
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise BadRow(f"turn {i}: a function_call needs a 'name'")
            out.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [_tool_call(call["name"], call.get("arguments"))],
                }
            )
        else:
            out.append({"role": _SHAREGPT_ROLES[turn["from"]], "content": value})
    return out


def _from_xlam(row: dict[str, Any]) -> list[Message]:
    # Salesforce/xlam-function-calling-60k: `query` text, `answers` JSON list of calls.
    query, answers = row.get("query"), _json(row.get("answers"), "answers")
    if not isinstance(query, str) or not isinstance(answers, list):
        raise BadRow("expected a 'query' string and an 'answers' list")
    calls = []
    for i, call in enumerate(answers):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise BadRow(f"answers[{i}]: a call needs a 'name'")
        calls.append(_tool_call(call["name"], call.get("arguments")))
    return [
        {"role": "user", "content": query},
        {"role": "assistant", "content": "", "tool_calls": calls},
    ]


def to_chat(row: dict[str, Any], source: Source) -> tuple[list[Message], list[Any] | None]:
    """One dataset row -> (messages, tools or None) as the chat template takes them."""
    if source.convert == "xlam":
        messages = _from_xlam(row)
    else:
        if source.column not in row:
            raise BadRow(f"no column {source.column!r}")
        value = row[source.column]
        messages = _from_sharegpt(value) if source.convert == "sharegpt" else value
    # `conversation` (WildChat, LMSYS) is role/content plus per-turn metadata:
    # check_messages keeps role, content and tool_calls only.
    messages = check_messages(messages)
    tools = None
    if source.tools_column:
        raw = _json(row.get(source.tools_column), source.tools_column)
        if raw not in (None, "", []):
            if not isinstance(raw, list):
                raise BadRow(f"{source.tools_column}: expected a list of tool definitions")
            if not all(isinstance(t, dict) for t in raw):
                raise BadRow(f"{source.tools_column}: expected tool definitions as objects")
            tools = [t if "type" in t else {"type": "function", "function": t} for t in raw]
    return messages, tools


def with_system_prompt(messages: list[Message], source: Source, index: int) -> list[Message]:
    """Give a conversation without a system turn one of the source's system prompts."""
    if not source.system_prompts or messages[0]["role"] == "system":
        return messages
    prompt = source.system_prompts[index % len(source.system_prompts)]
    return [{"role": "system", "content": prompt}, *messages]


def _flagged(moderation: Any) -> bool:
    # LMSYS/WildChat: one OpenAI moderation result per message, each with `flagged`.
    results = moderation if isinstance(moderation, list) else [moderation]
    return any(isinstance(r, dict) and r.get("flagged") for r in results)


def rejected(row: dict[str, Any], filters: Filters) -> str | None:
    """The filter that drops this row, or None when it is kept."""
    if filters.moderation:
        if filters.moderation not in row:
            raise BadRow(f"no moderation column {filters.moderation!r}")
        if _flagged(row[filters.moderation]):
            return "moderation"
    for column in filters.drop_if_true:
        if row.get(column):
            return column
    if filters.languages and row.get("language") not in filters.languages:
        return "language"
    return None
