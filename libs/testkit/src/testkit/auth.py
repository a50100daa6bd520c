"""The auth service's test harness: its files in a temporary folder, the service as a real process.

``AuthFiles`` holds what the service reads (the UI secrets, the identity key, the access
file, a workspace.yaml with two teams); ``start_auth`` runs ``python -m platform_services.auth``
against them and returns once it answers, with its JSON log at hand.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # what init hashes with

WORKSPACE = """\
load_from:
  - grpc_server:
      location_name: simple_ops
      host: simple_ops
      port: 4000
      additional_metadata: {team: data-extraction}
  - grpc_server:
      location_name: modular_assets
      host: modular_assets
      port: 4000
      additional_metadata: {team: analytics}
"""
ADMIN_PASSWORD = "break-glass-password"
ALICE_PASSWORD = "alice-password-123"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class AuthFiles:
    """The files the service reads, as the stack's volumes and mounts hold them."""

    root: Path
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def ui(self) -> Path:
        return self.root / "ui-secrets"

    @property
    def key_file(self) -> Path:
        return self.root / "identity" / "identity_key"

    @property
    def access(self) -> Path:
        return self.root / "access" / "access.yaml"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace.yaml"

    def create(self) -> AuthFiles:
        for folder in (self.ui, self.key_file.parent, self.access.parent):
            folder.mkdir(parents=True)
        self.key_file.write_text(self.key.hex())
        self.workspace.write_text(WORKSPACE)
        self.write_access("users:\n  alice: {analytics: editor}\n")
        self.add_user("admin", ADMIN_PASSWORD)
        self.add_user("alice", ALICE_PASSWORD)
        return self

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
            "UI_SECRETS_DIR": str(self.ui),
            "IDENTITY_KEY_FILE": str(self.key_file),
            "ACCESS_FILE": str(self.access),
            "WORKSPACE_FILE": str(self.workspace),
            "DAGSTER_UI_USER": "admin",
            "GATEWAY_BIND": "127.0.0.1",
            "AUTH_HOST": "127.0.0.1",
            "MALLOC_ARENA_MAX": "2",  # as the images set it
            **extra,
        }

    def init(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The init service's command line, against these files."""
        command = [sys.executable, "-m", "platform_services.init_secrets", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=self.env(**env))

    def add_user(self, name: str, password: str) -> None:
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
        htpasswd = self.ui / "htpasswd"
        lines = [line for line in (htpasswd.read_text().splitlines() if htpasswd.exists() else []) if line]
        lines = [line for line in lines if not line.startswith(f"{name}:")] + [f"{name}:{hashed}"]
        replace(htpasswd, "\n".join(lines) + "\n")

    def add_token(self, name: str) -> str:
        result = self.init("add-token", name)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[1]

    def write_access(self, text: str) -> None:
        replace(self.access, text)


def replace(path: Path, text: str) -> None:
    """Atomically, as init and `make ui-user` write (the service must see a whole file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Auth:
    """The running service: its address and its log (one JSON event per line)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if event is None or line["event"] == event]

    def wait_for_event(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        return wait_until(lambda: self.events(event)[-1:], timeout, f"a {event!r} log line")[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_auth(files: AuthFiles, **env: str) -> Auth:
    """Start the service and return once it answers /health (or fail with its output); AUTH_PORT may be given."""
    port = int(env.pop("AUTH_PORT", None) or free_port())
    log = files.root / f"auth-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "platform_services.auth"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=files.env(AUTH_PORT=str(port), **env),
        )
    auth = Auth(process, port, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the auth service exited with {process.returncode}:\n{log.read_text()}")
        try:
            return requests.get(f"{auth.url}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, 15, "the auth service to answer /health")
    except BaseException:
        auth.stop()
        raise
    return auth


def run_auth_to_exit(files: AuthFiles, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the service expecting it to refuse to start."""
    command = [sys.executable, "-m", "platform_services.auth"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, env=files.env(AUTH_PORT=str(free_port()), **env)
    )
