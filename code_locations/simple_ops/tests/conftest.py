"""Fixtures of the simple_ops tests: per-test exports and a webhook (``api``: testkit.pytest_plugin)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from platform_kit.exports import CsvExportResource
from platform_kit.source_api import SourceApiResource
from simple_ops.assets import ASSETS
from simple_ops.checks import CHECKS
from simple_ops.jobs import data_extraction_job
from simple_ops.resources import RESOURCES
from testkit.sample_api import SampleApi

Run = Callable[[], dg.ExecuteInProcessResult]


@pytest.fixture
def exports_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EXPORTS_DIR for this test; the location writes to its simple_ops/ folder."""
    monkeypatch.setenv("EXPORTS_DIR", str(tmp_path))
    return tmp_path / "simple_ops"


@pytest.fixture
def run_resources(api: SampleApi, exports_dir: Path) -> dict[str, object]:
    """The location's resources, with retries that take milliseconds instead of seconds.

    ``exports`` is the location's own resource, so EXPORTS_DIR is read as in production.
    """
    return {
        "source_api": SourceApiResource(base_url=api.url, backoff_seconds=0.01, max_attempts=3),
        "exports": RESOURCES["exports"],
    }


@pytest.fixture
def exports(exports_dir: Path) -> CsvExportResource:
    """The location's exports resource, resolved for direct calls outside a run."""
    return CsvExportResource(base_dir=str(exports_dir.parent), subdir=exports_dir.name)


@pytest.fixture
def run_assets(run_resources: dict[str, object]) -> Run:
    """Materialize the four assets and their checks; a failure is returned, not raised."""
    return lambda: dg.materialize([*ASSETS, *CHECKS], resources=run_resources, raise_on_error=False)


@pytest.fixture
def run_ops(run_resources: dict[str, object]) -> Run:
    """Execute data_extraction_job; a failure is returned, not raised."""
    return lambda: data_extraction_job.execute_in_process(resources=run_resources, raise_on_error=False)


class Webhook:
    """A local HTTP endpoint that records what is POSTed to it and answers ``status``."""

    def __init__(self) -> None:
        self.url = ""
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.content_types: list[str] = []


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A real webhook receiver (http.server in a thread) for the alert tests."""
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.content_types.append(self.headers["Content-Type"])
            hook.received.append(json.loads(body))
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/services/T000/B000/secret"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
