"""The metrics service's HTTP endpoints: GET /metrics, GET /health, POST /alerts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

MAX_ALERT_BYTES = 1 << 20


def alert_lines(payload: Any) -> list[str]:
    """One log line per alert of an Alertmanager webhook payload (version 4)."""
    alerts = payload.get("alerts") if isinstance(payload, Mapping) else None
    if not isinstance(alerts, list):
        raise ValueError("not an Alertmanager webhook payload: no alerts list")
    lines = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()}
        status = alert.get("status") or payload.get("status") or "unknown"
        details = [f"severity={labels['severity']}"] if "severity" in labels else []
        details += [f"{key}={value}" for key, value in sorted(labels.items()) if key not in ("alertname", "severity")]
        summary = annotations.get("summary") or annotations.get("description") or "(no summary)"
        line = f"ALERT {status} {labels.get('alertname', 'unnamed')} {' '.join(details)}: {summary}"
        if annotations.get("action"):
            line += f" (action: {annotations['action']})"
        lines.append(" ".join(line.split()))  # one line, whatever the annotations hold
    return lines


def make_server(host: str, port: int, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """The exporter's HTTP server (not started): /metrics, /health and /alerts."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "dagster-metrics"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                try:
                    body = generate_latest(registry)
                except Exception:
                    log.exception("the scrape failed")
                    self._reply(500, b"the scrape failed: see the metrics service's log\n")
                    return
                self._reply(200, body, CONTENT_TYPE_LATEST)
            elif path == "/health":
                self._reply(200, b"ok\n")
            else:
                self._reply(404, b"not found: GET /metrics, GET /health, POST /alerts\n")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/alerts":
                self._reply(404, b"not found: GET /metrics, GET /health, POST /alerts\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_ALERT_BYTES:
                self._reply(413, b"payload too large\n")
                return
            try:
                lines = alert_lines(json.loads(self.rfile.read(length) or b"null"))
            except ValueError as error:  # JSONDecodeError is one
                self._reply(400, f"{error}\n".encode())
                return
            for line in lines:
                log.info("%s", line)
            self._reply(200, b"ok\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: Prometheus scrapes every 15 s."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
