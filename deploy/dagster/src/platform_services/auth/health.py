"""The heartbeat: the service asks its own /health every few seconds and touches a file after each
answer, so that Docker's health check is a shell ``find`` on the file's age, not a Python start."""

from __future__ import annotations

import http.client
import os
import sys
import threading
from pathlib import Path

HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TIMEOUT = 4.0


def answers_health(host: str, port: int, timeout: float = HEARTBEAT_TIMEOUT) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health", headers={"X-Auth-Heartbeat": "1"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def start_heartbeat(
    host: str, port: int, path: Path, stop: threading.Event, interval: float = HEARTBEAT_SECONDS
) -> threading.Thread:
    """Touch ``path`` now and after every ``interval`` in which the server answered, through its socket."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)

    def beat() -> None:
        warned = False
        while True:
            if answers_health(host, port):
                try:
                    with open(path, "a"):
                        os.utime(path)
                except OSError as error:
                    if not warned:
                        sys.stderr.write(f"auth: cannot touch the health file {path}: {error}\n")
                        warned = True
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    return thread
