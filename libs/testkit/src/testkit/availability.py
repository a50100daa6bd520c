"""Is each code location available while something changes? Polled through the gateway.

A location is available when the webserver has it loaded (GraphQL's ``locationOrLoadError``
is a ``RepositoryLocation``) and a call to its code server answers: the execution plan of one
of its jobs, which the webserver asks the server for over gRPC. (The webserver keeps a
location's snapshot while its server is down, so the load status alone misses a gap.) Polled
every ``interval`` seconds from a thread; each failed poll counts the time since the poll
before against every location it saw unavailable (a poll that itself failed counts against
all of them).
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

JOBS_QUERY = """
query ($location: String!) { repositoryOrError(repositorySelector:
    {repositoryLocationName: $location, repositoryName: "__repository__"}) {
  ... on Repository { jobs { name } } } }
"""
PLAN_QUERY = """
query ($location: String!, $job: String!) { executionPlanOrError(mode: "default", pipeline:
    {repositoryLocationName: $location, repositoryName: "__repository__", pipelineName: $job}) {
  __typename ... on PythonError { message } } }
"""


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
    #: The job of each location whose execution plan is asked for.
    jobs: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Availability:
        self.unavailable = {location: 0.0 for location in self.locations}
        self.jobs = {location: self._plannable_job(location) for location in self.locations}
        self._thread = threading.Thread(target=self._poll, name="availability", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _plannable_job(self, location: str) -> str:
        """A job of ``location`` whose execution plan its code server answers now."""
        jobs = self.stack.graphql(JOBS_QUERY, {"location": location})["repositoryOrError"].get("jobs") or []
        for job in sorted(j["name"] for j in jobs):
            if not self._plan_problem(location, job):
                return job
        raise AssertionError(f"no job of {location} has an execution plan now, so its availability cannot be polled")

    def _plan_problem(self, location: str, job: str) -> str:
        try:
            plan = self.stack.graphql(PLAN_QUERY, {"location": location, "job": job}, timeout=5)["executionPlanOrError"]
        except (requests.RequestException, KeyError, AssertionError) as error:
            return f"the execution plan was not answered: {error}"
        return "" if plan["__typename"] == "ExecutionPlan" else f"no execution plan: {plan}"

    def _poll(self) -> None:
        before = time.monotonic()
        while not self._stop.is_set():
            problems = self.check()
            started, before = before, time.monotonic()
            for location, problem in problems.items():
                if problem:
                    self.unavailable[location] += before - started
                    self.samples.append((time.time(), location, problem))
            self.polls += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - before)))

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
            if loaded:
                problems[location] = self._plan_problem(location, self.jobs[location])
        return problems
