"""What shipping a code location costs the teams: make deploy against a recreate, in one run.

    .venv/bin/python -m bench.deploys    # part of `make bench`; alone: `make bench-deploys` (~15 min)

One stack (this template, compose project ``dagster-bench-deploys``), run from a copy of the
checkout (the measurement changes code and adds a location). A code-only change of
modular_assets is shipped ``--repeat`` times each way, alternating, while both teams have runs
queued and the sensors run:

- A: ``make deploy`` (template_tools.deploy, without the location's tests: they are the same
  either way), then ``make rollback``;
- B: the recreate the template had before: ``docker compose build`` and
  ``docker compose up -d --force-recreate modular_assets``.

For each: how long each location was unavailable (the webserver polled every 0.1 s:
testkit.availability), the sensor and schedule ticks that failed, the runs that did not
succeed, and the time from the switch (after the build) until the new code is served. The same
again with no runs queued, where the runs' containers do not share the 2 cores. Then a
third location is added with make new-location and make deploy while the other two have runs
queued: their gaps, failed ticks, lost runs, and which shared services restarted.
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.harness import BenchStack
from bench.measure import MODULAR_JOB, SIMPLE_JOB, load_average
from bench.report import Metric, Row, render
from bench.runs import launch_batch, wait_for_batch
from template_tools.scaffolding import copy_repo, lock, new_location
from testkit.availability import Availability
from testkit.markers import add_marker, asset_names
from testkit.stack import wait_for

PROJECT = "dagster-bench-deploys"
LOCATION, OTHER = MODULAR_JOB[1], SIMPLE_JOB[1]
NEW = "billing_reports"
SHARED = ("postgres", "sample_api", "webserver", "daemon", "metrics", "storage_janitor", "gateway", "auth")
SERVED_TARGET_S = 5.0


def change_code(stack: BenchStack) -> str:
    """A code-only change of modular_assets (a new release); the marker asset it adds."""
    return add_marker(stack.root / "code_locations" / LOCATION / "src" / LOCATION / "definitions.py")


#: The deploy tool's step once the old release drained (template_tools.switch.reload_webserver).
RELOADED = "the webserver shows the new release"


def step_time(log: str, text: str) -> float:
    """When the deploy tool logged the step containing ``text``: seconds since the command started."""
    for line in log.splitlines():
        found = re.match(r"deploy:\s+([\d.]+) s\s+(.*)", line)
        if found and text in found.group(2):
            return float(found.group(1))
    raise RuntimeError(f"the deploy tool logged no step {text!r}:\n{log[-2000:]}")


class Round:
    """One shipment: gaps, failed ticks and lost runs around ``ship``, which returns its own timings."""

    def __init__(self, stack: BenchStack, per_location: int) -> None:
        self.stack = stack
        self.per_location = per_location

    def __call__(self, ship: Callable[[], dict[str, float]], locations: list[str]) -> dict[str, float]:
        batch = f"deploys-{uuid.uuid4().hex[:8]}"
        runs = launch_batch(self.stack, batch, [MODULAR_JOB, SIMPLE_JOB] * self.per_location)
        since = time.time()
        with Availability(self.stack, locations) as availability:
            timings = ship()
        wait_for_batch(self.stack, batch, runs, timeout=900)
        result = {f"unavailable {name}": availability.unavailable[name] for name in locations}
        result["ticks failed"] = float(len(self.stack.failed_ticks(since)))
        result["runs lost"] = float(sum(run.status != "SUCCESS" for run in runs))
        return {**result, **timings}


def served(stack: BenchStack, *args: str, after: str | None, marker: str, present: bool) -> tuple[str, float]:
    """Run the deploy tool; seconds from its step ``after`` (or its start) until the webserver
    lists the ``marker`` asset (``present``) or no longer does. Returns (stderr, seconds)."""
    lines: list[tuple[float, str]] = []
    started_at = time.monotonic()
    tool = subprocess.Popen(stack.deploy_command(*args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in tool.stderr or []))
    reader.start()
    wait_for(lambda: (marker in asset_names(stack, LOCATION)) == present, timeout=600, interval=0.1, what="the code")
    loaded = time.monotonic()
    status = tool.wait(timeout=900)
    reader.join()
    log = "".join(line for _, line in lines)
    if status:
        raise RuntimeError(f"template_tools.deploy {' '.join(args)} failed: {log[-2000:]}")
    start = started_at if after is None else next(t for t, line in lines if after in line)
    return log, loaded - start


def deploy(markers: list[str], stack: BenchStack) -> dict[str, float]:
    marker = change_code(stack)
    markers.append(marker)
    log, seconds = served(stack, "deploy", LOCATION, "--no-test", after="built release", marker=marker, present=True)
    build = step_time(log, "built release")
    return {"build": build, "served": seconds, "reloaded": step_time(log, RELOADED) - build}


def recreate(markers: list[str], stack: BenchStack) -> dict[str, float]:
    marker = change_code(stack)
    markers.append(marker)
    started_at = time.monotonic()
    stack.compose("build", LOCATION, timeout=1800)
    build = time.monotonic() - started_at
    switched = time.monotonic()
    stack.recreate(LOCATION)
    wait_for(lambda: marker in asset_names(stack, LOCATION), timeout=180, interval=0.1, what="new code")
    return {"build": build, "served": time.monotonic() - switched}


def rollback(markers: list[str], stack: BenchStack) -> dict[str, float]:
    """Back to the release before the last deploy: its marker is gone."""
    log, seconds = served(stack, "rollback", LOCATION, after=None, marker=markers[-1], present=False)
    return {"served": seconds, "reloaded": step_time(log, RELOADED)}


def measure(stack: BenchStack, repeat: int, per_location: int, venv: Path) -> list[Row]:
    stack.compose("build", timeout=3600)
    record = stack.deploy_tool("record")
    if record.returncode:
        raise RuntimeError(record.stderr)
    stack.up(timeout=600)
    wait_for(stack.all_locations_loaded, timeout=180, what="every location loaded")
    samples = ship_rounds(Round(stack, per_location), stack, repeat, "runs queued")
    rows = []
    a, b = samples["deploy"], samples["recreate"]
    rows.append(
        Row(
            Metric("code-only redeploy of modular_assets: the image build", "s", a["build"]),
            Metric("", "s", b["build"]),
        )
    )
    rows.append(
        Row(
            Metric("  switch -> new code served", "s", a["served"], "", SERVED_TARGET_S),
            Metric("", "s", b["served"]),
        )
    )
    rows.append(Row(Metric("  switch -> the deploy reloaded the webserver", "s", a["reloaded"])))
    for key in (f"unavailable {LOCATION}", f"unavailable {OTHER}"):
        rows.append(Row(Metric(f"  {key} (polled every 0.1 s)", "s", a[key], "", 0.0), Metric("", "s", b[key])))
    for key in ("ticks failed", "runs lost"):
        rows.append(Row(Metric(f"  {key}", "", a[key], "", 0.0), Metric("", "", b[key])))
    r = samples["rollback"]
    rows.append(Row(Metric("make rollback: -> previous code served", "s", r["served"], "", SERVED_TARGET_S)))
    rows.append(Row(Metric("  -> the rollback reloaded the webserver", "s", r["reloaded"])))
    for key in (f"unavailable {LOCATION}", f"unavailable {OTHER}", "ticks failed", "runs lost"):
        rows.append(Row(Metric(f"  {key}", "s" if "unavailable" in key else "", r[key], "", 0.0)))
    quiet = ship_rounds(Round(stack, 0), stack, repeat, "no runs")
    a, b, r = quiet["deploy"], quiet["recreate"], quiet["rollback"]
    rows.append(
        Row(
            Metric("with no runs queued: switch -> new code served", "s", a["served"], "", SERVED_TARGET_S),
            Metric("", "s", b["served"]),
        )
    )
    rows.append(
        Row(
            Metric(f"  unavailable {LOCATION}", "s", a[f"unavailable {LOCATION}"], "", 0.0),
            Metric("", "s", b[f"unavailable {LOCATION}"]),
        )
    )
    rows.append(Row(Metric("  make rollback: -> previous code served", "s", r["served"], "", SERVED_TARGET_S)))
    rows += add_location(stack, Round(stack, per_location), venv)
    return rows


def ship_rounds(shipments: Round, stack: BenchStack, repeat: int, label: str) -> dict[str, dict[str, list[float]]]:
    """``repeat`` deploys (each followed by a rollback) and recreates, alternating: their samples by way."""
    samples: dict[str, dict[str, list[float]]] = {"deploy": {}, "recreate": {}, "rollback": {}}
    markers: list[str] = []
    ways: dict[str, Callable[[list[str], BenchStack], dict[str, float]]] = {"deploy": deploy, "recreate": recreate}
    both = [LOCATION, OTHER]
    for round_ in range(repeat):
        for way in ("deploy", "recreate") if round_ % 2 == 0 else ("recreate", "deploy"):  # drift hits both alike
            print(f"bench: {way} {round_ + 1}/{repeat}, {label} (load {load_average()})", file=sys.stderr, flush=True)
            for key, value in shipments(functools.partial(ways[way], markers, stack), both).items():
                samples[way].setdefault(key, []).append(value)
            if way == "deploy":
                for key, value in shipments(functools.partial(rollback, markers, stack), both).items():
                    samples["rollback"].setdefault(key, []).append(value)
    return samples


def add_location(stack: BenchStack, shipments: Round, venv: Path) -> list[Row]:
    before = stack.started(SHARED)
    scaffolded = new_location(stack.root, NEW, "--team", "billing")
    if scaffolded.returncode:
        raise RuntimeError(scaffolded.stderr)
    locked = lock(stack.root, venv)
    if locked.returncode:
        raise RuntimeError(locked.stderr)

    def ship() -> dict[str, float]:
        started_at = time.monotonic()
        result = stack.deploy_tool("deploy", NEW, "--no-test")
        if result.returncode:
            raise RuntimeError(f"make deploy {NEW} failed: {result.stderr[-2000:]}")
        wait_for(lambda: stack.all_locations_loaded([NEW]) or None, timeout=180, interval=0.5, what=f"{NEW} loaded")
        return {"loaded": time.monotonic() - started_at}

    result = shipments(ship, [LOCATION, OTHER])
    restarted = [service for service, state in stack.started(SHARED).items() if before[service] != state]
    rows = [Row(Metric("add a third location (make new-location, make deploy): -> loaded", "s", [result["loaded"]]))]
    for key in (f"unavailable {LOCATION}", f"unavailable {OTHER}", "ticks failed", "runs lost"):
        rows.append(Row(Metric(f"  {key}", "s" if "unavailable" in key else "", [result[key]], "", 0.0)))
    rows.append(Row(Metric("  shared services restarted", "", [float(len(restarted))], ", ".join(restarted), 0.0)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="redeploys each way (default 3)")
    parser.add_argument("--runs", type=int, default=2, help="runs queued per location around each (default 2)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dagster-bench-deploys-"))
    stack = BenchStack(project=PROJECT, workdir=workdir, label="template", root=copy_repo(workdir / "repo"))
    stack.write_settings()
    load_start = load_average()
    try:
        stack.down()
        rows = measure(stack, args.repeat, args.runs, workdir / "venv")
    finally:
        print("bench: removing the stack", file=sys.stderr, flush=True)
        stack.down()
        stack.docker("volume", "rm", "--force", f"{PROJECT}_{NEW}", check=False)
    header = (
        "shipping a code location: A = make deploy / make rollback, B = docker compose up --force-recreate; "
        f"load average {load_start} at start, {load_average()} at end"
    )
    print(render(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
