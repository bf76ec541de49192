"""A scripted OpenAI-compatible server that behaves like GLM-5.1 on SGLang (test scaffolding).

It never produces a number a card or gate reports as real. What it gives:
- GET /health, /v1/models, /server_info (SGLang's shape: server args + avg_spec_accept_length);
- POST /v1/chat/completions, whole or streamed (HTTP/1.1 chunked SSE, usage on request,
  `continuous_usage_stats`, `ignore_eos`), with GLM's `reasoning_content` when thinking is
  on, tool calls (single, parallel, forced, none, fed-back results), logprobs, needle
  retrieval, GSM8K answers (from the repo's data file), and long non-repetitive answers;
- output at a configured per-stream rate on a fixed schedule (token k of a stream leaves at
  ttft + k / rate), `tokens_per_chunk` tokens per chunk, as speculative decoding does;
- faults on demand (FAULTS): each breaks one behaviour the smoke suite checks.

Tokens are words and punctuation (`\\w+|[^\\w\\s]`); a message adds 4, the template 3.
Run it in-process (`OpenAIDouble(...)` as a context manager) or as a process:
`python tests/doubles/openai_double.py --port 8000 --rate 100 [--fault NAME]`.
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GSM8K = REPO / "src" / "glm51" / "smoke" / "data" / "gsm8k.jsonl"

FAULTS = (
    "reasoning-leak",  # thinking lands in content between <think> tags
    "invalid-tool-json",  # streamed tool arguments are not valid JSON
    "flat-first-token",  # the first token's distribution is flat (garbage weights)
    "accept-length-1",  # speculative decoding accepts nothing
    "die-mid-stream",  # the server dies a few chunks into a stream
    "health-503",  # /health answers 503
    "repetition",  # long answers loop
    "one-parallel-call",  # asked about several cities, calls the tool for the first only
)
VOCAB = 154880
CITIES = ("Paris", "Tokyo", "Berlin", "Lima", "Oslo")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Pieces whose concatenation is `text`, one per token (whitespace rides along)."""
    pieces, last = [], 0
    for m in _TOKEN.finditer(text):
        pieces.append(text[last : m.end()])
        last = m.end()
    if pieces and last < len(text):
        pieces[-1] += text[last:]
    return pieces or ([text] if text else [])


@dataclass
class Config:
    served_name: str = "GLM-5.1"
    rate_tok_s: float = 4000.0  # per stream
    tokens_per_chunk: int = 1
    ttft_s: float = 0.0
    accept_length: float = 3.2
    faults: frozenset[str] = frozenset()
    die_after_chunks: int = 3
    api_key: str | None = None  # like SGLang's --api-key: every path but /health needs it

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; expected some of {FAULTS}")


@dataclass
class Reply:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)  # {"name", "arguments" (a dict)}
    tokens: int | None = None  # bench filler: exactly this many tokens
    finish: str = "stop"


def _gsm8k_answers() -> dict[str, str]:
    answers = {}
    if GSM8K.exists():
        for line in GSM8K.read_text().splitlines():
            item = json.loads(line)
            answers[item["question"]] = item["answer"].split("####")[-1].strip()
    return answers


class Behaviour:
    """What GLM-5.1 would answer, scripted from the request."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.gsm8k = _gsm8k_answers()

    def prompt_tokens(self, body: dict) -> int:
        n = 3
        for m in body.get("messages", []):
            content = m.get("content") or ""
            n += 4 + count_tokens(content if isinstance(content, str) else json.dumps(content))
            for call in m.get("tool_calls") or ():
                n += count_tokens(json.dumps(call))
        if body.get("tools"):
            n += count_tokens(json.dumps(body["tools"]))
        return n

    def reply(self, body: dict) -> Reply:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        text = last.get("content") or "" if isinstance(last.get("content", ""), str) else ""
        thinking = (body.get("chat_template_kwargs") or {}).get("enable_thinking", True)
        reply = self._answer(body, messages, last, text)
        if thinking and reply.tokens is None and not body.get("ignore_eos"):
            reply.reasoning = "The user asks something simple. I will answer directly."
        if "reasoning-leak" in self.config.faults and reply.reasoning:
            reply.content = f"<think>{reply.reasoning}</think>{reply.content}"
            reply.reasoning = ""
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if reply.tokens is not None and max_tokens:
            reply.tokens = int(max_tokens)
            reply.finish = "length"
        return reply

    def _answer(self, body: dict, messages: list, last: dict, text: str) -> Reply:
        if body.get("ignore_eos"):
            return Reply(tokens=16)  # a bench request: exactly max_tokens tokens
        tools = body.get("tools") or []
        choice = body.get("tool_choice", "auto")
        whole = " ".join(str(m.get("content") or "") for m in messages)
        if tools and choice != "none":
            if last.get("role") == "tool":
                return Reply(content=f"It is {last.get('content')} there right now.")
            cities = [c for c in CITIES if c in text]
            if cities or choice == "required" or isinstance(choice, dict):
                name = tools[0]["function"]["name"]
                if "one-parallel-call" in self.config.faults:
                    cities = cities[:1]
                calls = [{"name": name, "arguments": {"city": c}} for c in cities or ["Paris"]]
                return Reply(tool_calls=calls, finish="tool_calls")
        if tools and choice == "none":
            return Reply(content="I will answer without tools: it is usually mild there.")
        needle = re.search(r"secret passphrase is ([\w-]+)", whole)
        if needle and "passphrase" in text:
            return Reply(content=f"The secret passphrase is {needle.group(1)}.")
        question = text.rsplit("Question: ", 1)[-1].removesuffix("Answer:").strip()
        if "Question: " in text and question in self.gsm8k:
            n = self.gsm8k[question]
            return Reply(content=f"Working it out step by step gives {n}.\n#### {n}")
        if "capital of France" in text:
            return Reply(content="Paris")
        if "essay" in text:
            if "repetition" in self.config.faults:
                return Reply(content="The river runs to the sea. " * 60)
            words = ("river", "meadow", "cedar", "lantern", "harbor", "valley", "orchard")
            lines = [
                f"Point {i}: the {words[i % 7]} meets the {words[(i * 3 + 1) % 7]} "
                f"in season {i * 7 % 13}."
                for i in range(60)
            ]
            return Reply(content=" ".join(lines))
        return Reply(content="Hello! The answer is 42.")

    def first_token_logprob(self, token: str) -> dict:
        if "flat-first-token" in self.config.faults:
            flat = -math.log(VOCAB)
            top = [{"token": t, "logprob": flat} for t in (token, "the", "a", "of", "and")]
            return {"token": token, "logprob": flat, "top_logprobs": top}
        top = [{"token": token, "logprob": -0.01}, {"token": "The", "logprob": -5.2}]
        return {"token": token, "logprob": -0.01, "top_logprobs": top}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, addr: tuple[str, int], config: Config) -> None:
        super().__init__(addr, _Handler)
        self.config = config
        self.behaviour = Behaviour(config)
        self.dead = threading.Event()
        self.requests: list[dict] = []
        self.emitted: list[tuple[float, int]] = []  # (perf_counter, tokens) per content chunk

    def die(self) -> None:
        """Stop accepting: later connections are refused, open ones are cut."""
        self.dead.set()

        def stop() -> None:
            self.shutdown()
            self.server_close()

        threading.Thread(target=stop, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away, or a connection cut by a fault


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _refused(self) -> bool:
        """401 without `Authorization: Bearer KEY` when the server has a key (not /health)."""
        key = self.server.config.api_key
        if key is None or self.path == "/health":
            return False
        if self.headers.get("Authorization") == f"Bearer {key}":
            return False
        self._json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self) -> None:
        cfg = self.server.config
        if self._refused():
            return
        if self.path == "/health":
            self._json(503 if "health-503" in cfg.faults else 200, {})
        elif self.path == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": cfg.served_name, "object": "model"}]}
            )
        elif self.path.startswith("/debug/emitted"):
            # Ground truth for benchmarks: tokens sent in [a, b] (perf_counter, which is the
            # system-wide monotonic clock on Linux, so a client in another process can ask).
            query = dict(p.split("=") for p in self.path.partition("?")[2].split("&") if p)
            a, b = float(query.get("a", "-inf")), float(query.get("b", "inf"))
            tokens = sum(n for t, n in list(self.server.emitted) if a <= t <= b)
            self._json(200, {"tokens": tokens})
        elif self.path in ("/server_info", "/get_server_info"):
            accept = 1.0 if "accept-length-1" in cfg.faults else cfg.accept_length
            self._json(
                200,
                {
                    "model_path": "/models/GLM-5.1-NVFP4",
                    "served_model_name": cfg.served_name,
                    "tp_size": 8,
                    "speculative_algorithm": "EAGLE",
                    "speculative_num_steps": 3,
                    "reasoning_parser": "glm45",
                    "tool_call_parser": "glm47",
                    "internal_states": [{"avg_spec_accept_length": accept}],
                    "version": "double",
                },
            )
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self._refused():
            self.rfile.read(length)
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"detail": "Not Found"})
            return
        self.server.requests.append(body)
        behaviour = self.server.behaviour
        reply = behaviour.reply(body)
        prompt = behaviour.prompt_tokens(body)
        pieces = self._pieces(reply, stream=bool(body.get("stream")))
        want_lp = bool(body.get("logprobs"))
        if body.get("stream"):
            self._stream(body, reply, pieces, prompt, want_lp)
        else:
            self._whole(reply, pieces, prompt, want_lp)

    def _pieces(self, reply: Reply, *, stream: bool) -> list[tuple[str, object, int]]:
        """(kind, payload, tokens): reasoning/content text, tool-call parts, filler tokens."""
        out: list[tuple[str, object, int]] = []
        out += [("reasoning", p, 1) for p in split_tokens(reply.reasoning)]
        out += [("content", p, 1) for p in split_tokens(reply.content)]
        for i, call in enumerate(reply.tool_calls):
            args = json.dumps(call["arguments"])
            if stream and "invalid-tool-json" in self.server.config.faults:
                args = args[:-1]  # the closing brace is lost
            out.append(("tool", (i, call["name"], None), 1))
            out += [("tool", (i, None, p), 1) for p in split_tokens(args)]
        if reply.tokens is not None:
            out += [("content", " tok", 1)] * reply.tokens
        return out

    def _wait_for(self, t0: float, tokens: int) -> None:
        cfg = self.server.config
        due = t0 + cfg.ttft_s + tokens / cfg.rate_tok_s
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def _whole(self, reply: Reply, pieces: list, prompt: int, want_lp: bool) -> None:
        t0 = time.perf_counter()
        completion = sum(n for _, _, n in pieces)
        self._wait_for(t0, completion)
        message: dict = {
            "role": "assistant",
            "content": "".join(p for k, p, _ in pieces if k == "content") or None,
        }
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(reply.tool_calls)
            ]
        choice: dict = {"index": 0, "message": message, "finish_reason": reply.finish}
        if want_lp:
            first = next((p for k, p, _ in pieces if k == "content"), "")
            choice["logprobs"] = {"content": [behaviour_lp(self.server, first.strip())]}
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        self._json(
            200,
            {
                "id": "chatcmpl-double",
                "object": "chat.completion",
                "model": self.server.config.served_name,
                "choices": [choice],
                "usage": usage,
            },
        )

    def _stream(self, body: dict, reply: Reply, pieces: list, prompt: int, want_lp: bool) -> None:
        cfg = self.server.config
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        continuous = include_usage and bool(options.get("continuous_usage_stats"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        t0 = time.perf_counter()

        def send(data: dict | str) -> None:
            line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            out: dict = {
                "id": "chatcmpl-double",
                "object": "chat.completion.chunk",
                "model": cfg.served_name,
                "choices": [choice],
            }
            if usage is not None:
                out["usage"] = usage
            return out

        def usage(done: int) -> dict:
            return {
                "prompt_tokens": prompt,
                "completion_tokens": done,
                "total_tokens": prompt + done,
            }

        try:
            send(chunk({"role": "assistant", "content": ""}))
            done = 0
            first = True
            step = max(1, cfg.tokens_per_chunk)
            for sent, start in enumerate(range(0, len(pieces), step), 1):
                group = pieces[start : start + step]
                done += sum(n for _, _, n in group)
                self._wait_for(t0, done)
                delta = _merge(group)
                if want_lp and first and delta.get("content"):
                    choice_lp = {"content": [behaviour_lp(self.server, delta["content"].strip())]}
                    out = chunk(delta)
                    out["choices"][0]["logprobs"] = choice_lp
                else:
                    out = chunk(delta)
                if delta.get("content"):
                    first = False
                if continuous:
                    out["usage"] = usage(done)
                send(out)
                self.server.emitted.append((time.perf_counter(), sum(n for _, _, n in group)))
                if "die-mid-stream" in cfg.faults and sent >= cfg.die_after_chunks:
                    self.server.die()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
            send(chunk({}, reply.finish, usage(done) if continuous else None))
            if include_usage:
                out = chunk({}, None, usage(done))
                out["choices"] = []
                send(out)
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


def behaviour_lp(server: Server, token: str) -> dict:
    return server.behaviour.first_token_logprob(token)


def _merge(group: list[tuple[str, object, int]]) -> dict:
    delta: dict = {}
    calls: dict[int, dict] = {}
    for kind, payload, _ in group:
        if kind == "reasoning":
            delta["reasoning_content"] = delta.get("reasoning_content", "") + str(payload)
        elif kind == "content":
            delta["content"] = delta.get("content", "") + str(payload)
        else:
            index, name, args = payload  # type: ignore[misc]
            call = calls.setdefault(index, {"index": index, "function": {}})
            if name is not None:
                call.update(id=f"call_{index}", type="function")
                call["function"]["name"] = name
                call["function"].setdefault("arguments", "")
            if args is not None:
                call["function"]["arguments"] = call["function"].get("arguments", "") + args
    if calls:
        delta["tool_calls"] = list(calls.values())
    return delta


class OpenAIDouble:
    """In-process: `with OpenAIDouble(Config(...)) as double: double.url`."""

    def __init__(self, config: Config | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or Config()
        self.server = Server((host, port), self.config)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    def __enter__(self) -> OpenAIDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_forever(config: Config, host: str, port: int) -> None:
    server = Server((host, port), config)
    print(f"openai double listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-name", default="GLM-5.1")
    parser.add_argument("--rate", type=float, default=4000.0, help="tokens/s per stream")
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS)
    args = parser.parse_args(argv)
    config = Config(
        args.served_name, args.rate, args.tokens_per_chunk, args.ttft, faults=frozenset(args.fault)
    )
    serve_forever(config, args.host, args.port)


if __name__ == "__main__":
    main()
