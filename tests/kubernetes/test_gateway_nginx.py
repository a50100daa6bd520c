"""The gateway's Kubernetes nginx config (manifests/gateway-config.yaml), run by a real nginx: login and CSRF rules.

Needs an nginx binary (Debian's nginx-light is what the gateway image runs; `make test`
installs it as root); skipped without one. The config is rendered by the image's own
entrypoint with the Deployment's env, the chart's webserver replaced by a local stand-in
and everything else (port, users file, temp paths) moved into a temporary folder. No
Docker, no cluster.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from template_tools import kubernetes

if TYPE_CHECKING:
    from tests.kubernetes.conftest import Gateway

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="no nginx binary (apt-get install nginx-light)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Upstream(http.server.BaseHTTPRequestHandler):
    """The webserver's stand-in: 200 and who logged in, for GET and POST."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = f"user={self.headers.get('X-Forwarded-User')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, k8s_gateway: Gateway) -> Iterator[str]:
    """The gateway's URL, served by nginx with the Kubernetes config in front of the stand-in."""
    assert NGINX is not None
    folder = tmp_path_factory.mktemp("gateway")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # The chart's webserver is a local stand-in.
    rendered = k8s_gateway.render(folder, GATEWAY_WEBSERVER=f"127.0.0.1:{upstream.server_address[1]}")
    port = free_port()
    conf = (
        rendered.replace("/tmp/", f"{folder}/")  # first: the paths below are in /tmp too
        .replace(f"listen {kubernetes.GATEWAY_PORT};", f"listen 127.0.0.1:{port};")
        .replace("/run/ui-secrets/htpasswd", str(folder / "htpasswd"))
    )
    if os.geteuid() == 0:  # nginx started by root runs its workers as nobody; the image runs all as one user
        conf = "user root;\n" + conf
    (folder / "nginx.conf").write_text(conf, encoding="utf-8")
    (folder / "htpasswd").write_text("alice:{PLAIN}secret\n", encoding="utf-8")
    process = subprocess.Popen(
        [NGINX, "-e", "stderr", "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/__gateway/health", timeout=1).close()
                break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
                    raise RuntimeError(f"nginx did not start: {log}") from error
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()


def request(
    url: str,
    *,
    login: bool = True,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, str]:
    """(status, body) of one request to the gateway."""
    all_headers = dict(headers or {})
    if login:
        all_headers["Authorization"] = "Basic YWxpY2U6c2VjcmV0"  # alice:secret
    req = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_health_needs_no_login_and_the_ui_does(gateway: str) -> None:
    assert request(f"{gateway}/__gateway/health", login=False)[0] == 200
    assert request(f"{gateway}/", login=False)[0] == 401
    assert request(f"{gateway}/", headers={"Authorization": "Basic YWxpY2U6d3Jvbmc="}, login=False)[0] == 401
    assert request(f"{gateway}/") == (200, "user=alice")  # who logged in reaches the webserver


def test_requests_from_another_site_are_refused(gateway: str) -> None:
    host = gateway.removeprefix("http://")

    assert request(f"{gateway}/", headers={"Origin": "https://evil.example"})[0] == 403
    assert request(f"{gateway}/", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert request(f"{gateway}/", headers={"Origin": f"http://{host}"})[0] == 200


def test_graphql_takes_operations_only_as_json_posts(gateway: str) -> None:
    assert request(f"{gateway}/graphql?query=%7B__typename%7D")[0] == 403
    assert request(f"{gateway}/graphql", method="POST", headers={"Content-Type": "text/plain"}, body=b"x")[0] == 415
    json_post = request(f"{gateway}/graphql", method="POST", headers={"Content-Type": "application/json"}, body=b"{}")
    assert json_post == (200, "user=alice")
