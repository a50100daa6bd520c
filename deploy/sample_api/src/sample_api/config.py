"""The settings of sample-api and their validation.

*Knobs* (data size, seed, faults) can be set at start-up and changed at run time;
*server options* (host, port, quiet, health file) only at start-up. The same definitions parse
start-up text (command line and ``SAMPLE_API_*`` environment variables) and
run-time JSON (``POST /__admin/config``), so both accept the same values and
report the same messages.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MODES = (
    "normal",
    "malformed",
    "truncated",
    "drift_missing",
    "drift_renamed",
    "empty",
    "duplicate_ids",
    "wrong_shape",
)


class SettingError(ValueError):
    """A setting was given an unknown name or a value outside what it allows."""


@dataclass(frozen=True)
class Config:
    """A complete, validated set of knob values (the defaults match JSONPlaceholder)."""

    users: int = 10
    posts_per_user: int = 10
    seed: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    retry_after: int = 1
    fail_next: int = 0
    latency_ms: int = 0
    mode: str = "normal"
    fault_paths: tuple[str, ...] = ("/",)

    def to_json(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["fault_paths"] = list(self.fault_paths)
        return values

    def merged(self, changes: Mapping[str, Any]) -> Config:
        """A copy with ``changes`` (JSON values by knob name) validated and applied."""
        for name in changes:
            if name not in KNOBS:
                raise SettingError(f"unknown knob {name!r}; known knobs: {', '.join(KNOBS)}")
        return dataclasses.replace(
            self, **{name: KNOBS[name].from_json(name, value) for name, value in changes.items()}
        )


@dataclass(frozen=True)
class Setting:
    """How one setting is parsed from text and from JSON, and what it allows."""

    allowed: str
    parse: Callable[[str], Any]
    check: Callable[[Any], bool]

    def from_text(self, label: str, raw: str) -> Any:
        """Parse ``raw``; on failure raise a SettingError naming ``label``."""
        try:
            value = self.parse(raw.strip())
        except ValueError:
            value = None
        if value is None or not self.check(value):
            raise SettingError(f"{label} must be {self.allowed}, got {raw!r}")
        return value

    def from_json(self, label: str, raw: Any) -> Any:
        """Validate a JSON value; on failure raise a SettingError naming ``label``."""
        value = tuple(raw) if isinstance(raw, list) else raw
        if isinstance(raw, bool) or not self.check(value):
            raise SettingError(f"{label} must be {self.allowed}, got {raw!r}")
        return value


def _whole(low: int | None = None, high: int | None = None) -> Setting:
    if low is None:
        allowed = "a whole number"
    elif high is None:
        allowed = f"a whole number >= {low}"
    else:
        allowed = f"a whole number from {low} to {high}"

    def check(value: Any) -> bool:
        return isinstance(value, int) and (low is None or value >= low) and (high is None or value <= high)

    return Setting(allowed, int, check)


def _fraction() -> Setting:
    def check(value: Any) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1

    return Setting("a number from 0.0 to 1.0", float, check)


def _choice(options: tuple[str, ...]) -> Setting:
    return Setting(f"one of {', '.join(options)}", str, lambda value: value in options)


def _paths() -> Setting:
    def parse(raw: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def check(value: Any) -> bool:
        return isinstance(value, tuple) and all(isinstance(path, str) and path.startswith("/") for path in value)

    return Setting('a list of path prefixes, each starting with "/"', parse, check)


def _flag() -> Setting:
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    return Setting("one of 1, true, yes, on, 0, false, no, off", lambda raw: words.get(raw.lower()), lambda _: True)


KNOBS: dict[str, Setting] = {
    "users": _whole(0),
    "posts_per_user": _whole(0),
    "seed": _whole(),
    "error_rate": _fraction(),
    "error_status": _whole(400, 599),
    "retry_after": _whole(0),
    "fail_next": _whole(0),
    "latency_ms": _whole(0),
    "mode": _choice(MODES),
    "fault_paths": _paths(),
}

SERVER_OPTIONS: dict[str, Setting] = {
    "host": Setting("a host name or IP address", str, bool),
    "port": _whole(0, 65535),
    "quiet": _flag(),
    "health_file": Setting("a file path", str, bool),
}
SERVER_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 8080, "quiet": False, "health_file": ""}


def env_var(name: str) -> str:
    """The environment variable that sets the setting ``name`` at start-up."""
    return f"SAMPLE_API_{name.upper()}"
