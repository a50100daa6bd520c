"""The process: start-up output, settings from the CLI and environment, signals, determinism."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sample_api.__main__ import resolve_settings
from sample_api.config import Config, SettingError
from sample_api.server import make_server, start_heartbeat
from testkit.sample_api import SampleApi, running_sample_api

if TYPE_CHECKING:
    from testkit.sample_api import Fetch

ALLOWED_MODES = "one of normal, malformed, truncated, drift_missing, drift_renamed, empty, duplicate_ids, wrong_shape"
SRC_DIR = str(Path(__file__).resolve().parent.parent / "src")
TIMEOUT = 15


def _environment(**variables: str) -> dict[str, str]:
    """The caller's environment without SAMPLE_API_* variables, plus ``variables`` (port 0 unless given)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAMPLE_API_")}
    return {**env, "PYTHONPATH": SRC_DIR, "SAMPLE_API_PORT": "0", **variables}


def _args(**values: str) -> argparse.Namespace:
    names = ("host", "port", "quiet", "health_file", *Config().to_json())
    return argparse.Namespace(**{name: values.get(name) for name in names})


def test_it_prints_one_listening_line_and_exits_0_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(),
    )
    watchdog = threading.Timer(TIMEOUT, process.kill)  # bounds the blocking readline below
    watchdog.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert re.fullmatch(r"sample-api listening on http://127\.0\.0\.1:[1-9]\d*\n", line)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()

    assert process.returncode == 0, stderr
    assert stdout == b""


def test_sigterm_stops_a_server_that_has_served_requests(fetch: Fetch) -> None:
    with running_sample_api() as api:
        assert fetch(f"{api.url}/posts").status == 200
        api.process.send_signal(signal.SIGTERM)
        assert api.process.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAMPLE_API_USERS", "abc", "SAMPLE_API_USERS must be a whole number >= 0, got 'abc'"),
        ("SAMPLE_API_PORT", "70000", "SAMPLE_API_PORT must be a whole number from 0 to 65535, got '70000'"),
        ("SAMPLE_API_ERROR_RATE", "2", "SAMPLE_API_ERROR_RATE must be a number from 0.0 to 1.0, got '2'"),
        ("SAMPLE_API_ERROR_STATUS", "302", "SAMPLE_API_ERROR_STATUS must be a whole number from 400 to 599, got '302'"),
        ("SAMPLE_API_MODE", "chaos", f"SAMPLE_API_MODE must be {ALLOWED_MODES}, got 'chaos'"),
        (
            "SAMPLE_API_QUIET",
            "maybe",
            "SAMPLE_API_QUIET must be one of 1, true, yes, on, 0, false, no, off, got 'maybe'",
        ),
    ],
)
def test_a_bad_environment_variable_exits_2_with_a_one_line_message(variable: str, value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sample_api"],
        capture_output=True,
        env=_environment(**{variable: value}),
        timeout=TIMEOUT,
    )

    assert result.returncode == 2
    assert result.stderr.decode() == f"sample-api: {message}\n"
    assert result.stdout == b""


def test_settings_come_from_the_cli_then_the_environment_then_the_defaults() -> None:
    environ = {"SAMPLE_API_USERS": "3", "SAMPLE_API_SEED": "9", "SAMPLE_API_MODE": " ", "SAMPLE_API_QUIET": "yes"}
    options, config = resolve_settings(_args(users="5", fault_paths="/posts, /users"), environ)

    assert options == {"host": "127.0.0.1", "port": 8080, "quiet": True, "health_file": ""}
    assert config == Config(users=5, seed=9, fault_paths=("/posts", "/users"))


def test_a_bad_command_line_value_names_the_option() -> None:
    with pytest.raises(SettingError, match=r"^--latency-ms must be a whole number >= 0, got '-3'$"):
        resolve_settings(_args(latency_ms="-3"), {"SAMPLE_API_LATENCY_MS": "10"})


def test_the_same_knobs_give_the_same_bytes_in_separate_processes(api: SampleApi, fetch: Fetch) -> None:
    knobs = {"users": 50, "posts_per_user": 3, "seed": 7}
    paths = ["/users", "/users/17", "/posts", "/posts/101", "/comments?postId=5", "/comments"]
    with running_sample_api(**knobs) as first, running_sample_api(**knobs) as second:
        bodies = [fetch(first.url + path).body for path in paths]
        assert [fetch(second.url + path).body for path in paths] == bodies
    api.configure(**knobs)  # changing the size and seed at run time gives the same data too
    assert [fetch(api.url + path).body for path in paths] == bodies
    api.configure(seed=8)
    assert fetch(api.url + "/users").body != bodies[0]


def test_with_a_health_file_it_touches_it_after_answering_its_own_health_and_does_not_log_that(
    tmp_path: Path,
) -> None:
    """Docker's health check only looks at the file's age (no Python start per probe)."""
    health = tmp_path / "alive"
    process = subprocess.Popen(
        [sys.executable, "-m", "sample_api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(SAMPLE_API_HEALTH_FILE=str(health)),
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not health.exists():
            assert time.monotonic() < deadline and process.poll() is None, "no heartbeat"
            time.sleep(0.05)
        assert time.time() - health.stat().st_mtime < 5
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0
    assert b"/health" not in stderr  # the heartbeat's requests are not logged (others are)


def test_the_heartbeat_stops_when_the_server_stops_answering(tmp_path: Path) -> None:
    health = tmp_path / "alive"
    server = make_server("127.0.0.1", 0, Config(), quiet=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    try:
        start_heartbeat(server, health, interval=0.05, timeout=0.5)
        deadline = time.monotonic() + TIMEOUT
        while not health.exists():
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.02)
        first = health.stat().st_mtime_ns
        while health.stat().st_mtime_ns == first:  # touched again and again
            assert time.monotonic() < deadline, "no second heartbeat"
            time.sleep(0.02)

        server.shutdown()  # still listening, no longer answering: as a hung server
        time.sleep(1)  # a heartbeat in flight finishes or times out
        stopped = health.stat().st_mtime_ns
        time.sleep(1.5)
        assert health.stat().st_mtime_ns == stopped
    finally:
        server.server_close()
