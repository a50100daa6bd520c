"""`python -m platform_services.healthcheck webserver` against a server that, like the stack's webserver,
answers only requests carrying an identity signed with the deployment's key (Kubernetes' probes run it)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_services.access import identity

KEY = identity.new_key()


class Webserver(http.server.BaseHTTPRequestHandler):
    """/server_info for a request the gateway could have signed, 401 for any other."""

    def do_GET(self) -> None:
        try:
            who = identity.verify(self.headers.get(identity.HEADER), KEY)
            status = 200 if self.path == "/server_info" and who.user == "healthcheck" else 404
        except identity.IdentityError:
            status = 401
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webserver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def healthcheck(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {key: value for key, value in os.environ.items() if key != "IDENTITY_KEY_FILE"}
    variables.update(WEBSERVER_PORT=str(port), **env)
    command = [sys.executable, "-m", "platform_services.healthcheck", "webserver"]
    return subprocess.run(command, env=variables, capture_output=True, text=True, timeout=30)


def test_the_check_signs_its_request_with_the_identity_key(port: int, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY.hex(), encoding="utf-8")

    result = healthcheck(port, IDENTITY_KEY_FILE=str(tmp_path / "key"))

    assert (result.returncode, result.stdout) == (0, "healthy\n")


def test_without_the_key_the_webserver_refuses_and_the_check_says_so(port: int, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(identity.new_key().hex(), encoding="utf-8")

    for result in (healthcheck(port), healthcheck(port, IDENTITY_KEY_FILE=str(tmp_path / "key"))):
        assert result.returncode == 1
        assert result.stdout.startswith(f"unhealthy: http://127.0.0.1:{port}/server_info") and "401" in result.stdout
