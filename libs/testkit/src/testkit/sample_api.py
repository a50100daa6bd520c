"""Run a real sample-api process from tests (standard library only, no pytest needed).

Example::

    from testkit.sample_api import running_sample_api

    with running_sample_api(users=10, posts_per_user=10) as api:
        requests.get(f"{api.url}/users")
        api.configure(mode="malformed", fault_paths=["/posts"])
        api.stats()["by_path"]["/posts"]
        api.reset()

The server runs as ``python -m sample_api`` in a subprocess, exactly as the
service does, on a free port of 127.0.0.1. ``SAMPLE_API_*`` variables of the
calling environment are not passed on, so only the given knobs apply.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any, NoReturn

import sample_api
from sample_api.config import KNOBS

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
_SRC_DIR = str(Path(sample_api.__file__).resolve().parent.parent)
_LISTENING = re.compile(rb"sample-api listening on (http://\S+)\s*")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never send localhost through a proxy


@dataclass
class Reply:
    """A complete HTTP response."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


#: ``fetch(url, method="GET", body=None, timeout=10)``
Fetch = Callable[..., Reply]


def fetch(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 10) -> Reply:
    """Send one request (never through a proxy); error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


class SampleApiError(RuntimeError):
    """sample-api failed to start, or an admin request was rejected."""


class SampleApi:
    """A running sample-api process and its admin API."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        self.process = process
        """The server process (for example to send it a signal)."""

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time; return the new configuration.

        Raises SampleApiError with the server's message if a knob or value is rejected.
        """
        return self._call("POST", "/__admin/config", knobs)

    def config(self) -> dict[str, Any]:
        """The current knobs."""
        return self._call("GET", "/__admin/config")

    def reset(self) -> dict[str, Any]:
        """Restore the start-up knobs and zero the counters; return the configuration."""
        return self._call("POST", "/__admin/reset")

    def stats(self) -> dict[str, Any]:
        """Request counters since start or reset: ``requests``, ``by_path``, ``by_status``, ``faults``."""
        return self._call("GET", "/__admin/stats")

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as error:
            with error:
                body = error.read().decode(errors="replace")
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body
            raise SampleApiError(f"{method} {path} failed with {error.code}: {message}") from None


@contextmanager
def running_sample_api(*, startup_timeout: float = STARTUP_TIMEOUT, **knobs: Any) -> Iterator[SampleApi]:
    """Start sample-api with the given start-up ``knobs``; stop it on exit.

    Knobs are those of ``python -m sample_api --help`` with underscores, e.g.
    ``users=20_000, posts_per_user=10, mode="empty", fault_paths=["/posts"]``.
    Raises TypeError for an unknown knob, SampleApiError (with the server's
    stderr) if the server exits or is not healthy within ``startup_timeout``.
    """
    command = [sys.executable, "-m", "sample_api", "--host", "127.0.0.1", "--port", "0", "--quiet", *_knob_args(knobs)]
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAMPLE_API_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC_DIR, env.get("PYTHONPATH")]))
    deadline = time.monotonic() + startup_timeout
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            api = SampleApi(_wait_for_url(process, stderr, deadline), process)
            _wait_until_healthy(api, stderr, deadline)
            yield api
        finally:
            _stop(process)


def _knob_args(knobs: dict[str, Any]) -> list[str]:
    args = []
    for name, value in knobs.items():
        if name not in KNOBS:
            raise TypeError(f"unknown sample-api knob {name!r}; known knobs: {', '.join(KNOBS)}")
        text = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
        args.append(f"--{name.replace('_', '-')}={text}")
    return args


def _wait_for_url(process: subprocess.Popen[bytes], stderr: IO[bytes], deadline: float) -> str:
    """Read the "listening on" line (in a thread, so that the wait is bounded) and return its URL."""
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        _fail(process, stderr, "did not report its address in time")
    if not line:
        _fail(process, stderr, "exited before reporting its address")
    match = _LISTENING.fullmatch(line)
    if match is None:
        _fail(process, stderr, f"printed {line!r} instead of its address")
    return match.group(1).decode()


def _wait_until_healthy(api: SampleApi, stderr: IO[bytes], deadline: float) -> None:
    """Poll ``/health`` until it answers 200, the process exits or the deadline passes."""
    while True:
        try:
            with _OPENER.open(f"{api.url}/health", timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as error:  # urllib.error.URLError is an OSError
            if api.process.poll() is not None or time.monotonic() >= deadline:
                _fail(api.process, stderr, f"did not become healthy: {error}")
            time.sleep(0.05)  # brief pause between polls, bounded by the deadline


def _fail(process: subprocess.Popen[bytes], stderr: IO[bytes], problem: str) -> NoReturn:
    _stop(process)
    stderr.seek(0)
    output = stderr.read().decode(errors="replace").strip()
    raise SampleApiError(f"sample-api {problem} (exit status {process.returncode}); stderr:\n{output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate gracefully (SIGTERM), then kill if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
