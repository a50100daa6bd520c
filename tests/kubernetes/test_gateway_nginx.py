"""The gateway's config (manifests/gateway-config.yaml, the compose gateway's too), run by a real nginx
in front of the real auth service: logins, the identity it passes on, and the CSRF rules.

Needs an nginx binary (Debian's nginx-light is what the gateway image runs; `make test`
installs it as root); skipped without one. The config is rendered by the image's own
entrypoint with the Kubernetes Deployment's env, the webserver replaced by a local stand-in
and the paths (port, temp files) moved into a temporary folder. No Docker, no cluster.
"""

from __future__ import annotations

import base64
import http.server
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from platform_services.access import identity
from template_tools import kubernetes
from testkit.auth import ALICE_PASSWORD, Auth, AuthFiles, free_port, start_auth, wait_until

if TYPE_CHECKING:
    from tests.kubernetes.conftest import Gateway

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="no nginx binary (apt-get install nginx-light)")
ALICE = "Basic " + base64.b64encode(f"alice:{ALICE_PASSWORD}".encode()).decode()


class Upstream(http.server.BaseHTTPRequestHandler):
    """The webserver's stand-in: who the verified identity says asked, as the webserver would see it."""

    key = b""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        try:
            who = identity.verify(self.headers.get(identity.HEADER), self.key).user
        except identity.IdentityError as error:
            who = f"refused ({error})"
        body = f"user={who}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@dataclass
class Running:
    url: str
    auth: Auth
    files: AuthFiles


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, k8s_gateway: Gateway) -> Iterator[Running]:
    """The gateway's URL: nginx with the Kubernetes config, the auth service and the webserver's stand-in."""
    assert NGINX is not None
    folder = tmp_path_factory.mktemp("gateway")
    files = AuthFiles(folder / "auth").create()
    auth = start_auth(files)
    Upstream.key = files.key
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    rendered = k8s_gateway.render(
        folder,
        GATEWAY_WEBSERVER=f"127.0.0.1:{upstream.server_address[1]}",
        GATEWAY_AUTH=f"127.0.0.1:{auth.port}",
    )
    port = free_port()
    conf = (
        rendered.replace("/tmp/", f"{folder}/")  # first: the paths below are in /tmp too
        .replace(f"listen {kubernetes.GATEWAY_PORT};", f"listen 127.0.0.1:{port};")
        .replace("listen 127.0.0.1:8081;", f"listen 127.0.0.1:{free_port()};")
    )
    if os.geteuid() == 0:  # nginx started by root runs its workers as nobody; the image runs all as one user
        conf = "user root;\n" + conf
    (folder / "nginx.conf").write_text(conf, encoding="utf-8")
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
        yield Running(url, auth, files)
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()
        auth.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def request(
    url: str,
    *,
    login: str | None = ALICE,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of one request to the gateway; redirects are not followed."""
    all_headers = dict(headers or {})
    if login:
        all_headers["Authorization"] = login
    req = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_health_needs_no_login_and_the_ui_does(gateway: Running) -> None:
    url = gateway.url
    assert request(f"{url}/__gateway/health", login=None)[0] == 200
    assert request(f"{url}/", login=None)[0] == 401
    assert request(f"{url}/", login="Basic YWxpY2U6d3Jvbmc=")[0] == 401  # alice:wrong
    assert request(f"{url}/")[:2] == (200, "user=alice")  # who logged in reaches the webserver


def test_a_browser_without_a_login_is_sent_to_the_login_page_and_a_script_is_not(gateway: Running) -> None:
    status, _, headers = request(f"{gateway.url}/runs?x=1", login=None, headers={"Accept": "text/html"})

    assert status == 302 and headers["Location"] == "/__auth/login?next=/runs?x=1"
    assert (
        request(
            f"{gateway.url}/graphql",
            login=None,
            method="POST",
            headers={"Content-Type": "application/json"},
            body=b"{}",
        )[0]
        == 401
    )
    page = request(f"{gateway.url}/__auth/login", login=None)
    assert page[0] == 200 and "<form" in page[1]


def test_the_login_form_gives_a_session_that_the_webserver_sees_as_its_user(gateway: Running) -> None:
    form = urllib.parse.urlencode({"username": "alice", "password": ALICE_PASSWORD, "next": "/"}).encode()
    status, _, headers = request(
        f"{gateway.url}/__auth/login",
        login=None,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=form,
    )
    assert status in (302, 303), headers
    cookie = headers["Set-Cookie"].split(";", 1)[0]

    assert request(f"{gateway.url}/", login=None, headers={"Cookie": cookie})[:2] == (200, "user=alice")


def test_an_identity_a_client_sends_is_never_passed_on(gateway: Running) -> None:
    forged = identity.sign(identity.Identity("mallory", "token", admin=True), gateway.files.key)

    assert request(f"{gateway.url}/", headers={identity.HEADER: forged})[:2] == (200, "user=alice")
    assert request(f"{gateway.url}/", login=None, headers={identity.HEADER: forged})[0] == 401


def test_requests_from_another_site_are_refused(gateway: Running) -> None:
    url = gateway.url
    host = url.removeprefix("http://")

    assert request(f"{url}/", headers={"Origin": "https://evil.example"})[0] == 403
    assert request(f"{url}/", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert (
        request(
            f"{url}/graphql",
            method="POST",
            body=b"{}",
            headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Content-Type": "application/json"},
        )[0]
        == 403
    )
    assert request(f"{url}/", headers={"Origin": f"http://{host}"})[0] == 200
    # Following a link from another site (an alert's link to a run) is a page load: allowed.
    navigation = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert request(f"{url}/runs", headers=navigation)[0] == 200
    assert (
        request(
            f"{url}/graphql", method="POST", body=b"{}", headers={**navigation, "Content-Type": "application/json"}
        )[0]
        == 403
    )


def test_graphql_takes_operations_only_as_json_posts(gateway: Running) -> None:
    url = gateway.url
    assert request(f"{url}/graphql?query=%7B__typename%7D")[0] == 403
    assert request(f"{url}/graphql", method="POST", headers={"Content-Type": "text/plain"}, body=b"x")[0] == 415
    json_post = request(f"{url}/graphql", method="POST", headers={"Content-Type": "application/json"}, body=b"{}")
    assert json_post[:2] == (200, "user=alice")


def test_a_refusal_never_asks_the_browser_for_a_password(gateway: Running) -> None:
    """No basic-auth pop-up: a browser's refused request (the UI after its session ended) gets a plain 401."""
    status, body, headers = request(
        f"{gateway.url}/graphql",
        login=None,
        method="POST",
        body=b"{}",
        headers={"Sec-Fetch-Mode": "cors", "Content-Type": "application/json"},
    )

    assert status == 401 and "/__auth/login" in body
    assert "WWW-Authenticate" not in headers


def test_guessed_passwords_are_throttled_per_client_and_good_logins_are_not(gateway: Running) -> None:
    def burst(login: str) -> list[int]:
        with ThreadPoolExecutor(max_workers=20) as pool:
            return list(pool.map(lambda _: request(f"{gateway.url}/server_info", login=login)[0], range(30)))

    guesses = burst("Basic YWxpY2U6d3Jvbmc=")  # alice:wrong
    # While throttled, no password is even checked; the client waits a second, then logs in.
    wait_until(lambda: request(f"{gateway.url}/server_info")[0] == 200, 5, "the throttle to pass")
    logins = burst(ALICE)

    assert set(guesses) == {401, 429} and guesses.count(429) > guesses.count(401), guesses
    assert set(logins) == {200}, logins  # a burst of good logins is never throttled
