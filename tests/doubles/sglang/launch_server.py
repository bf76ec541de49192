"""Test double for `python -m sglang.launch_server` (scaffolding, never a real server).

- `--help`: prints the recorded help in $FAKE_SGLANG_HELP (default: the fork's recording).
- otherwise: writes $FAKE_SGLANG_MARKER (argv and the env glm51 added, as JSON), serves
  the scripted GLM double (tests/doubles/openai_double.py: /health, /v1/models,
  /server_info, chat completions) on --host/--port as --served-model-name, with the faults
  named in $FAKE_SGLANG_FAULTS (comma-separated), and on SIGTERM/SIGINT exits with
  $FAKE_SGLANG_EXIT_CODE (default 43), so a test can tell the server's code was passed on
  (with FAKE_SGLANG_DIE_BY_SIGNAL set, it dies of the signal instead).
"""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openai_double import Config, Server

HELP = Path(__file__).resolve().parents[2] / "data" / "sglang-help" / "blackwell-fork.txt"


def _last(argv: list[str], flag: str, default: str) -> str:
    value = default
    for i, token in enumerate(argv[:-1]):
        if token == flag:
            value = argv[i + 1]
    return value


def _config_key(argv: list[str]) -> tuple[str | None, dict | None]:
    """--api-key, or `api-key` in the --config YAML file (read as SGLang 0.5.23's
    ConfigArgumentMerger reads it); and the config file's mode and folder mode, as seen."""
    key = _last(argv, "--api-key", "") or None
    path = _last(argv, "--config", "")
    if not path:
        return key, None
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    seen = {
        "mode": oct(os.stat(path).st_mode & 0o777),
        "folder_mode": oct(os.stat(Path(path).parent).st_mode & 0o777),
        "path": path,
    }
    return data.get("api-key", key), seen


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(Path(os.environ.get("FAKE_SGLANG_HELP", HELP)).read_text())
        return 0
    code = int(os.environ.get("FAKE_SGLANG_EXIT_CODE", "43"))
    host, port = _last(argv, "--host", "127.0.0.1"), int(_last(argv, "--port", "30000"))
    faults = frozenset(f for f in os.environ.get("FAKE_SGLANG_FAULTS", "").split(",") if f)
    name = _last(argv, "--served-model-name", "GLM-5.1")
    key, config = _config_key(argv)
    server = Server((host, port), Config(served_name=name, faults=faults, api_key=key))

    def stop(signum: int, _frame: object) -> None:
        server.server_close()
        if os.environ.get("FAKE_SGLANG_DIE_BY_SIGNAL"):  # like a server without handlers
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Written once the signals are handled, so a test may signal as soon as it sees it.
    if os.environ.get("FAKE_SGLANG_MARKER"):
        env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "SGLANG_ENABLE_SPEC_V2")}
        seen = {"argv": argv, "env": env, "config": config, "has_key": key is not None}
        Path(os.environ["FAKE_SGLANG_MARKER"]).write_text(json.dumps(seen))
    print(f"fake sglang listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
