"""Launch a run through the stack's GraphQL API, wait for it gently, and read where its time went.

Timings come from the run's own event log (timestamps written by the webserver, the daemon and
the run container, all on this host's clock), not from polling, so the status poll can be slow
(1 s) without blurring the numbers: on 2 cores a tight poll measurably slows the run it watches.

:class:`RunMemorySampler` records the peak memory of the run's container while it runs (the
container is auto-removed when the run ends, so it must be watched live).
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchStack, cgroup_dir

LAUNCH_MUTATION = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
} }
"""
STATUS_QUERY = "query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"
EVENTS_QUERY = """
query ($runId: ID!, $cursor: String) { runOrError(runId: $runId) { __typename ... on Run {
    status
    eventConnection(afterCursor: $cursor) { cursor hasMore events { __typename
        ... on MessageEvent { timestamp stepKey message } } }
} } }
"""
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
#: Runs of the benchmark are never retried (the instance retries crashed runs by default).
RUN_TAGS = {"dagster/max_retries": "0"}

#: The phases of a run, in order: (name, from event, to event).
PHASES = (
    ("launch -> queued", "submitted", "RunEnqueuedEvent"),
    ("queued -> starting", "RunEnqueuedEvent", "RunStartingEvent"),
    ("starting -> container created", "RunStartingEvent", "container"),
    ("container created -> worker process up", "container", "worker"),
    ("worker up -> run started (code loaded)", "worker", "RunStartEvent"),
    ("started -> first step", "RunStartEvent", "first_step"),
    ("steps (first start -> last end)", "first_step", "last_step"),
    ("last step -> success", "last_step", "RunSuccessEvent"),
)


@dataclass
class RunTimeline:
    """One finished run: its status and the wall-clock time of its milestones (epoch seconds)."""

    run_id: str
    status: str
    marks: dict[str, float]
    steps: dict[str, float]
    """Seconds each step took (its start event to its success event)."""
    memory: MemoryPeak | None = None

    @property
    def total_s(self) -> float:
        """Launch (the GraphQL request) -> the run's success event."""
        return self.marks["RunSuccessEvent"] - self.marks["submitted"]

    @property
    def steps_s(self) -> float:
        """Start of the first step -> end of the last one."""
        return self.marks["last_step"] - self.marks["first_step"]

    def phases(self) -> dict[str, float]:
        """Seconds spent in each of :data:`PHASES`."""
        return {name: self.marks[end] - self.marks[start] for name, start, end in PHASES}


def timeline_from_events(run_id: str, status: str, submitted: float, events: list[dict[str, Any]]) -> RunTimeline:
    """Milestones and step durations from a run's event log."""
    marks = {"submitted": submitted}
    step_start: dict[str, float] = {}
    steps: dict[str, float] = {}
    for event in events:
        kind, at = event["__typename"], int(event["timestamp"]) / 1000
        if kind in ("RunEnqueuedEvent", "RunStartingEvent", "RunStartEvent", "RunSuccessEvent"):
            marks.setdefault(kind, at)
        elif kind == "EngineEvent" and "Launching run in a new container" in (event["message"] or ""):
            marks.setdefault("container", at)
        elif kind == "EngineEvent" and (event["message"] or "").startswith("Started process for run"):
            marks.setdefault("worker", at)
        elif kind == "ExecutionStepStartEvent":
            step_start[event["stepKey"]] = at
            marks.setdefault("first_step", at)
        elif kind == "ExecutionStepSuccessEvent":
            steps[event["stepKey"]] = at - step_start[event["stepKey"]]
            marks["last_step"] = at
    return RunTimeline(run_id, status, marks, steps)


def run_events(stack: BenchStack, run_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The run's status and its whole event log (all pages)."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        run = stack.graphql(EVENTS_QUERY, {"runId": run_id, "cursor": cursor})["runOrError"]
        connection = run["eventConnection"]
        events.extend(connection["events"])
        if not connection["hasMore"]:
            return run["status"], events
        cursor = connection["cursor"]


def launch(stack: BenchStack, job: str, location: str, tags: dict[str, str] | None = None) -> str:
    """Launch ``job`` with one GraphQL request (as the UI does), with the stack's run config (the
    stock variant's asks for the multiprocess executor); return the run id."""
    tags = {**RUN_TAGS, **(tags or {})}
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": stack.run_config,
        "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
    }
    result = stack.graphql(LAUNCH_MUTATION, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launching {job} failed: {result['__typename']}: {result.get('message')}")
    return result["run"]["runId"]


def launch_and_wait(
    stack: BenchStack,
    job: str,
    location: str,
    *,
    timeout: float = 300,
    poll_s: float = 1.0,
    sample_memory: bool = False,
) -> RunTimeline:
    """Launch ``job``, wait until it finishes, and return its timeline (and peak memory if asked).

    Raises RuntimeError when the run does not succeed.
    """
    submitted = time.time()
    run_id = launch(stack, job, location)
    sampler = RunMemorySampler(stack, run_id) if sample_memory else None
    if sampler:
        sampler.start()
    deadline = time.monotonic() + timeout
    while (status := stack.graphql(STATUS_QUERY, {"runId": run_id})["runOrError"]["status"]) not in FINISHED:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} of {job} did not finish within {timeout:.0f} s")
        time.sleep(poll_s)
    memory = sampler.finish() if sampler else None
    status, events = run_events(stack, run_id)
    if status != "SUCCESS":
        messages = [e["message"] for e in events if e["__typename"].endswith("FailureEvent") and e["message"]]
        raise RunFailed(run_id, job, status, messages[-3:], memory)
    timeline = timeline_from_events(run_id, status, submitted, events)
    timeline.memory = memory
    return timeline


BATCH_QUERY = """
query ($tag: String!) { runsOrError(filter: {tags: [{key: "bench/batch", value: $tag}]}) { ... on Runs {
    results { runId status jobName endTime tags { key value } }
} } }
"""


@dataclass
class BatchRun:
    """One run of a batch: what was launched, when, and how it ended (epoch seconds)."""

    run_id: str
    job: str
    location: str
    submitted: float
    status: str = "QUEUED"
    ended: float | None = None

    @property
    def total_s(self) -> float:
        assert self.ended is not None
        return self.ended - self.submitted


def launch_batch(stack: BenchStack, batch: str, jobs: list[tuple[str, str]]) -> list[BatchRun]:
    """Launch every (job, location) of ``jobs`` at once (they queue), tagged ``bench/batch=<batch>``."""
    runs = []
    for job, location in jobs:
        submitted = time.time()
        runs.append(BatchRun(launch(stack, job, location, {"bench/batch": batch}), job, location, submitted))
    return runs


def wait_for_batch(stack: BenchStack, batch: str, runs: list[BatchRun], timeout: float) -> list[BatchRun]:
    """Poll (every 3 s: gently, the runs share the 2 cores) until every run of the batch has ended."""
    by_id = {run.run_id: run for run in runs}
    deadline = time.monotonic() + timeout
    while True:
        for result in stack.graphql(BATCH_QUERY, {"tag": batch})["runsOrError"]["results"]:
            run = by_id.get(result["runId"])
            if run is not None:
                run.status, run.ended = result["status"], result["endTime"]
        if all(run.status in FINISHED for run in runs):
            return runs
        if time.monotonic() > deadline:
            pending = sum(run.status not in FINISHED for run in runs)
            raise RuntimeError(f"{pending} of {len(runs)} runs of batch {batch} did not finish within {timeout:.0f} s")
        time.sleep(3)


class RunFailed(RuntimeError):
    """A benchmark run did not succeed; ``memory`` says whether its container ran out of memory."""

    def __init__(self, run_id: str, job: str, status: str, messages: list[str], memory: MemoryPeak | None) -> None:
        oom = " (the container was OOM-killed)" if memory and memory.oom_kills else ""
        super().__init__(f"run {run_id} of {job} ended {status}{oom}: {' | '.join(messages)}")
        self.memory = memory


@dataclass
class MemoryPeak:
    """Memory high-water marks of one run container, in MiB."""

    worker_hwm_mib: float = 0.0
    """Peak RSS of the run worker process (VmHWM: the kernel's own high-water mark, exact)."""
    cgroup_peak_mib: float = 0.0
    """Peak charge of the container's memory cgroup (RSS + page cache; what mem_limit applies to)."""
    limit_mib: float = 0.0
    oom_kills: int = 0
    samples: int = 0


@dataclass
class RunMemorySampler:
    """Follows one run's container from the host and keeps its memory high-water marks.

    How: the container (found by its ``dagster/run_id`` label) is read directly from the host's
    cgroup and /proc every ``interval`` seconds: the worker's ``VmHWM`` and the cgroup's own
    high-water mark (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``). Both are kernel
    high-water marks, not samples of current usage, so the last read before the container exits
    already covers everything until then; only a new peak in the final ``interval`` (after the
    run's last event, while the process exits) could be missed. Needs the Docker engine on this
    host and read access to its /proc and /sys/fs/cgroup (root or the same user); otherwise the
    sampler reports zero samples.
    """

    stack: BenchStack
    run_id: str
    interval: float = 0.2
    peak: MemoryPeak = field(default_factory=MemoryPeak)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name=f"memory-{self.run_id[:8]}", daemon=True)
        self._thread.start()

    def finish(self) -> MemoryPeak:
        """Wait (briefly) for the container to go away, stop sampling, return the peaks."""
        assert self._thread is not None
        self._thread.join(timeout=15)
        self._stop.set()
        self._thread.join()
        return self.peak

    def _follow(self) -> None:
        container = self._wait_for_container()
        cgroup = container and cgroup_dir(container)
        while cgroup and cgroup.exists() and not self._stop.is_set():
            try:
                self._sample(cgroup)
            except (OSError, ValueError):  # the container exited between two reads
                break
            time.sleep(self.interval)

    def _wait_for_container(self) -> str | None:
        while not self._stop.is_set():
            found = subprocess.run(
                ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label=dagster/run_id={self.run_id}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if found:
                return found[0]
            time.sleep(0.25)
        return None

    def _sample(self, cgroup: Path) -> None:
        peak = self.peak
        for pid in (cgroup / "cgroup.procs").read_text().split():
            status = Path(f"/proc/{pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak.worker_hwm_mib = max(peak.worker_hwm_mib, int(line.split()[1]) / 1024)
        high_water = cgroup / (
            "memory.max_usage_in_bytes" if (cgroup / "memory.max_usage_in_bytes").exists() else "memory.peak"
        )
        peak.cgroup_peak_mib = max(peak.cgroup_peak_mib, int(high_water.read_text()) / 2**20)
        limit = (
            (cgroup / ("memory.limit_in_bytes" if (cgroup / "memory.limit_in_bytes").exists() else "memory.max"))
            .read_text()
            .strip()
        )
        peak.limit_mib = int(limit) / 2**20 if limit.isdigit() else 0.0
        oom = cgroup / ("memory.oom_control" if (cgroup / "memory.oom_control").exists() else "memory.events")
        for line in oom.read_text().splitlines():
            if line.startswith("oom_kill "):
                peak.oom_kills = int(line.split()[1])
        peak.samples += 1


def median_phases(timelines: list[RunTimeline]) -> dict[str, float]:
    """The median of each phase over ``timelines``."""
    return {name: statistics.median(t.phases()[name] for t in timelines) for name, _, _ in PHASES}


def describe(timeline: RunTimeline) -> dict[str, Any]:
    """A JSON-ready summary of one run (for the --json report)."""
    return {
        "run_id": timeline.run_id,
        "total_s": round(timeline.total_s, 3),
        "phases_s": {name: round(value, 3) for name, value in timeline.phases().items()},
        "steps_s": {key: round(value, 3) for key, value in timeline.steps.items()},
        "memory": dataclasses.asdict(timeline.memory) if timeline.memory else None,
    }
