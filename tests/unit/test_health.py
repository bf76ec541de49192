"""--wait-ready polls /health of a real local HTTP server."""

import http.server
import threading

import pytest

from glm51.endpoint.health import health_url, wait_ready
from glm51.errors import InfraError


class _Health(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self):
        type(self).calls += 1
        ready = self.path == "/health" and type(self).calls >= 3  # up on the third poll
        self.send_response(200 if ready else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Health.calls = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def test_waits_until_health_answers_200(server):
    url = health_url("0.0.0.0", server.server_address[1])
    assert url.startswith("http://127.0.0.1:")
    wait_ready(url, timeout_s=10, interval_s=0.01)
    assert _Health.calls == 3


def test_gives_up_when_the_server_exits(server):
    url = health_url("127.0.0.1", server.server_address[1])
    with pytest.raises(InfraError, match="exited before"):
        wait_ready(url, timeout_s=10, interval_s=0.01, still_running=lambda: False)


def test_times_out_on_a_closed_port():
    with pytest.raises(InfraError, match="did not answer 200"):
        wait_ready("http://127.0.0.1:9/health", timeout_s=0.05, interval_s=0.01)
