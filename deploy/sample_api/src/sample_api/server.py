"""HTTP handling for sample-api: routing, streamed JSON, the admin API and faults.

Data endpoints (``/users``, ``/posts``, ``/comments`` and their sub-paths) are
subject to the fault knobs; ``/health`` and ``/__admin/*`` never are, and they
are not counted in the request statistics.

With a health file (``--health-file``), a thread asks the server's own ``/health``
every HEARTBEAT_SECONDS and touches the file after each answer: Docker's health check
only looks at the file's age, instead of starting Python for every probe.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sample_api.config import Config, SettingError
from sample_api.data import Dataset
from sample_api.routes import HttpError, Item, Listing, encode, is_data_path, render, resolve

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
#: How often the heartbeat asks /health, and how long it waits for the answer.
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TIMEOUT = 4.0
#: Marks the heartbeat's own requests, which are not logged (one line every 5 s would be noise).
HEARTBEAT_HEADER = "X-Sample-Api-Heartbeat"
STREAM_THRESHOLD = 256 * 1024  # bodies up to this size get a Content-Length; longer ones are streamed
MAX_ADMIN_BODY = 64 * 1024
LIST_MODES = ("empty", "duplicate_ids", "wrong_shape")
MALFORMED_BODY = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>Bad Gateway</h1><p>The upstream server returned an invalid response.</p></body></html>\n"
)


class State:
    """The current knobs, the fault RNG and the request counters, shared by all threads."""

    _config: Config
    _rng: random.Random
    _requests: int
    _faults: int
    _by_path: Counter[str]
    _by_status: Counter[str]

    def __init__(self, startup: Config) -> None:
        self._startup = startup
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> Config:
        """Return to the start-up knobs and zero the counters."""
        with self._lock:
            self._set(self._startup)
            self._requests = 0
            self._faults = 0
            self._by_path = Counter()
            self._by_status = Counter()
            return self._config

    def config(self) -> Config:
        """The current knobs."""
        with self._lock:
            return self._config

    def update(self, changes: Mapping[str, Any]) -> Config:
        """Validate and apply knob changes (raises SettingError); reseeds the fault RNG."""
        with self._lock:
            self._set(self._config.merged(changes))
            return self._config

    def begin(self, path: str) -> tuple[Config, bool, bool]:
        """Count a data request and decide its faults.

        Returns the knobs to serve it with, whether faults apply to ``path``
        (it is a data endpoint under ``fault_paths``) and whether to fail it.
        """
        with self._lock:
            self._requests += 1
            self._by_path[path] += 1
            config = self._config
            faultable = is_data_path(path) and path.startswith(config.fault_paths)
            if not faultable:
                return config, False, False
            if config.fail_next:
                self._config = replace(config, fail_next=config.fail_next - 1)
                return config, True, True
            return config, True, config.error_rate > 0 and self._rng.random() < config.error_rate

    def finish(self, status: int, faulted: bool) -> None:
        """Count the outcome of a data request."""
        with self._lock:
            self._by_status[str(status)] += 1
            self._faults += faulted

    def stats(self) -> dict[str, Any]:
        """The counters since start-up or the last reset."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_path": dict(self._by_path),
                "by_status": dict(self._by_status),
                "faults": self._faults,
            }

    def _set(self, config: Config) -> None:
        self._config = config
        self._rng = random.Random(config.seed)


class SampleApiServer(ThreadingHTTPServer):
    """A threading HTTP server that holds the shared :class:`State`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], startup: Config, quiet: bool) -> None:
        self.state = State(startup)
        self.quiet = quiet
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host, which can stall start-up."""
        TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)


class Handler(BaseHTTPRequestHandler):
    """Serves one connection; HTTP/1.1 keep-alive with chunked streaming of long lists."""

    server: SampleApiServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds an idle keep-alive connection is kept open

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST request (admin endpoints only)."""
        self._serve()

    do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET  # answered with 405

    def version_string(self) -> str:
        """The Server header."""
        return "sample-api"

    def send_response(self, code: int, message: str | None = None) -> None:
        """Send the status line, remembering the status for the log line."""
        self._status = code
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer requests the base class rejects (malformed, unknown method) with a JSON error."""
        self.log_message("%s %s", self.requestline or "-", code)
        self.close_connection = True
        self._send(code, JSON_TYPE, [encode({"error": message or HTTPStatus(code).phrase})])

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Disabled: :meth:`_serve` logs each request once it is complete."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr unless the server is quiet."""
        if not self.server.quiet:
            sys.stderr.write(f"sample-api: {format % args}\n")

    def _serve(self) -> None:
        started = time.perf_counter()
        self._status = 0
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            handlers = self._handlers(path)
            if handlers is None:
                self._send_json(404, {"error": f"no such endpoint: {path}"})
            elif self.command not in handlers:
                self.close_connection = True  # any request body is left unread
                self._send_json(405, {"error": f"{self.command} not allowed"}, {"Allow": ", ".join(handlers)})
            else:
                handlers[self.command](path, dict(parse_qsl(url.query)))
        except HttpError as error:
            self._send_json(error.status, error.body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-response
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if HEARTBEAT_HEADER not in self.headers:
                self.log_message("%s %s %s %.1fms", self.command, self.path, self._status, elapsed_ms)

    def _handlers(self, path: str) -> dict[str, Callable[[str, dict[str, str]], None]] | None:
        if path == "/health":
            return {"GET": self._health}
        if path == "/__admin/config":
            return {"GET": self._get_config, "POST": self._post_config}
        if path == "/__admin/reset":
            return {"POST": self._reset}
        if path == "/__admin/stats":
            return {"GET": self._stats}
        if path.startswith("/__admin"):
            return None
        return {"GET": self._data}

    def _health(self, path: str, query: dict[str, str]) -> None:
        config = self.server.state.config()
        self._send_json(200, {"status": "ok", "users": config.users, "posts": config.users * config.posts_per_user})

    def _get_config(self, path: str, query: dict[str, str]) -> None:
        self._send_json(200, self.server.state.config().to_json())

    def _post_config(self, path: str, query: dict[str, str]) -> None:
        body = self._read_body()
        try:
            changes = json.loads(body)
        except ValueError as error:
            raise HttpError(400, {"error": f"the request body is not valid JSON: {error}"}) from None
        if not isinstance(changes, dict):
            raise HttpError(400, {"error": "the request body must be a JSON object of knob values"})
        try:
            config = self.server.state.update(changes)
        except SettingError as error:
            raise HttpError(400, {"error": str(error)}) from None
        self._send_json(200, config.to_json())

    def _reset(self, path: str, query: dict[str, str]) -> None:
        self._read_body()
        self._send_json(200, self.server.state.reset().to_json())

    def _stats(self, path: str, query: dict[str, str]) -> None:
        self._send_json(200, self.server.state.stats())

    def _data(self, path: str, query: dict[str, str]) -> None:
        state = self.server.state
        config, faultable, fail = state.begin(path)
        faulted = fail
        try:
            if faultable and config.latency_ms:
                time.sleep(config.latency_ms / 1000)
            if fail:
                headers = {"Retry-After": str(config.retry_after)} if config.error_status in (429, 503) else {}
                self._send_json(
                    config.error_status, {"error": "injected fault", "status": config.error_status}, headers
                )
                return
            data = Dataset(config.users, config.posts_per_user, config.seed)
            try:
                result = resolve(data, path, query)
            except HttpError as error:
                self._send_json(error.status, error.body)
                return
            mode = config.mode if faultable else "normal"
            faulted = mode != "normal" and (isinstance(result, Listing) or mode not in LIST_MODES)
            self._send_data(data, result, mode if faulted else "normal")
        finally:
            state.finish(self._status, faulted)

    def _send_data(self, data: Dataset, result: Listing | Item, mode: str) -> None:
        if mode == "malformed":
            self._send(200, HTML_TYPE, [MALFORMED_BODY])
            return
        body = render(data, result, mode)
        headers = {"X-Total-Count": str(0 if mode == "empty" else result.total)} if isinstance(result, Listing) else {}
        if mode == "truncated":
            first = next(body).decode()
            body = iter([first[: len(first) // 2].encode()])
        self._send(200, JSON_TYPE, body, headers)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length", "0")
        if not (length.isascii() and length.isdigit()):
            self.close_connection = True
            raise HttpError(411, {"error": "a Content-Length header is required"})
        if int(length) > MAX_ADMIN_BODY:
            self.close_connection = True
            raise HttpError(413, {"error": f"the request body must be at most {MAX_ADMIN_BODY} bytes"})
        return self.rfile.read(int(length))

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, JSON_TYPE, [encode(body)], headers)

    def _send(
        self, status: int, content_type: str, chunks: Iterable[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        """Send a response: with a Content-Length if short, else streamed chunk by chunk."""
        chunks = iter(chunks)
        head: list[bytes] = []
        size = 0
        for chunk in chunks:
            head.append(chunk)
            size += len(chunk)
            if size > STREAM_THRESHOLD:
                break
        else:
            body = b"".join(head)
            self._start(status, content_type, headers, {"Content-Length": str(len(body))})
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        if self.request_version == "HTTP/1.0":  # no chunked encoding: the end of the body is the close
            self.close_connection = True
            self._start(status, content_type, headers)
            for chunk in chain(head, chunks):
                self.wfile.write(chunk)
            return
        self._start(status, content_type, headers, {"Transfer-Encoding": "chunked"})
        for chunk in chain(head, chunks):
            if chunk:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _start(self, status: int, content_type: str, *header_sets: Mapping[str, str] | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for headers in header_sets:
            for name, value in (headers or {}).items():
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()


def make_server(host: str, port: int, config: Config, quiet: bool = False) -> SampleApiServer:
    """Create a server bound to ``host:port`` (0 picks a free port) serving ``config``."""
    return SampleApiServer((host, port), config, quiet)


def _answers_health(host: str, port: int, timeout: float) -> bool:
    """Whether GET /health on ``host:port`` answers 200 within ``timeout``."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health", headers={HEARTBEAT_HEADER: "1"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def start_heartbeat(
    server: SampleApiServer,
    path: str | os.PathLike[str],
    interval: float = HEARTBEAT_SECONDS,
    timeout: float = HEARTBEAT_TIMEOUT,
) -> threading.Thread:
    """Touch ``path`` now and after every ``interval`` in which the server answered its own /health.

    Through the listening socket, as a client would: a server that stops accepting or
    answering stops touching the file.
    """
    host = str(server.server_address[0])
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host

    def beat() -> None:
        warned = False
        while True:
            if _answers_health(host, server.server_port, timeout):
                try:
                    with open(path, "a"):
                        os.utime(path)
                except OSError as error:
                    if not warned:
                        sys.stderr.write(f"sample-api: cannot touch the health file {path}: {error}\n")
                        warned = True
            time.sleep(interval)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    return thread
