"""Is each code location available while something changes? Polled through the gateway.

A location is available when the webserver has it loaded: GraphQL's ``locationOrLoadError``
is a ``RepositoryLocation``. Polled every ``interval`` seconds from a thread; each failed poll
counts its interval against every location it saw unavailable (a poll that itself failed
counts against all of them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import requests

from testkit.stack import LOCATIONS_QUERY, Stack


@dataclass
class Availability:
    stack: Stack
    locations: Sequence[str]
    interval: float = 0.1
    #: Seconds each location was unavailable, by location.
    unavailable: dict[str, float] = field(default_factory=dict)
    #: (time, location, what the webserver said) of each unavailable sample.
    samples: list[tuple[float, str, str]] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Availability:
        self.unavailable = {location: 0.0 for location in self.locations}
        self._thread = threading.Thread(target=self._poll, name="availability", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            for location, problem in self.check().items():
                if problem:
                    self.unavailable[location] += self.interval
                    self.samples.append((time.time(), location, problem))
            self.polls += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def check(self) -> dict[str, str]:
        """Each location's problem ("" when it is available)."""
        try:
            entries: list[dict[str, Any]] = self.stack.graphql(LOCATIONS_QUERY, timeout=5)["workspaceOrError"][
                "locationEntries"
            ]
        except (requests.RequestException, KeyError, AssertionError) as error:
            return {location: f"the webserver did not answer: {error}" for location in self.locations}
        seen = {entry["name"]: entry for entry in entries}
        problems = {}
        for location in self.locations:
            entry = seen.get(location)
            loaded = (
                entry is not None and (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
            )
            problems[location] = "" if loaded else f"not loaded: {entry}"
        return problems
