"""The measurements. Each function drives the stack (or the floor) and returns its table rows;
details that do not fit the table (per-service, per-phase, per-step numbers) go into ``details``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BASE_IMAGE, DAGSTER_IMAGES, BenchStack, wait_for
from report import DEPLOY_DOCKER, Metric
from runs import PHASES, RunFailed, RunTimeline, describe, launch_and_wait, median_phases
from sample_api.testing import running_sample_api
from template_tools.locations import ROOT

FLOOR_SCRIPT = Path(__file__).with_name("floor.py")
SIMPLE_JOB = ("data_extraction_job", "simple_ops")
MODULAR_JOB = ("all_assets_job", "modular_assets")
MODULAR_ASSETS = 13
#: Run memory limits (GiB) to raise DAGSTER_MAX_RUN_MEMORY to, in turn, when a scale run is OOM-killed.
RUN_MEMORY_LIMITS_GIB = (2, 4, 8, 12)


@dataclass(frozen=True)
class Scale:
    """A sample API size, as a multiple of the seed (10 users x 10 posts each)."""

    label: str
    users: int
    posts_per_user: int = 10

    @property
    def posts(self) -> int:
        return self.users * self.posts_per_user


SEED = Scale("seed", 10)


def load_average() -> str:
    """The 1/5/15-minute load average (the machine is shared: read every number against it)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- 5. footprint ----------------------------------------------------------------------
def build_images(stack: BenchStack, cold: bool, details: dict[str, Any]) -> list[Metric]:
    """Build the stack's images; with ``cold``, time a --no-cache build of the Dagster images."""
    metrics = []
    if cold:
        services = ("webserver", *stack.location_names)
        started = time.monotonic()
        stack.compose("build", "--no-cache", *services, timeout=1800)
        seconds = time.monotonic() - started
        details["cold_build"] = {"services": services, "seconds": seconds, "load": load_average()}
        metrics.append(
            Metric(
                f"cold build: {len(services)} Dagster images, --no-cache",
                "s",
                [seconds],
                "downloads wheels from PyPI (uv, no cache)",
                35.0,
            )
        )
    stack.compose("build", timeout=1800)  # everything else (cached)
    return metrics


def image_sizes(stack: BenchStack) -> list[Metric]:
    """Sizes of the webserver/daemon image and of each code location image."""
    base = stack.image_size_mb(BASE_IMAGE)
    rows = []
    for name in DAGSTER_IMAGES:
        size = stack.image_size_mb(stack.image(name))
        if name == "dagster":
            reference, target = DEPLOY_DOCKER["webserver_image_mb"], 430.0
            label = "image: webserver/daemon"
        else:
            reference, target = DEPLOY_DOCKER["code_location_image_mb"], 400.0
            label = f"image: code location {name}"
        rows.append(
            Metric(label, "MB", [size], f"base {base:.0f} MB (+{size - base:.0f}); deploy_docker {reference}", target)
        )
    return rows


#: What DAGSTER_MONITORING=0 leaves out.
MONITORING_SERVICES = ("metrics", "prometheus", "alertmanager")


def idle_memory(stack: BenchStack, idle_s: float, samples: int, details: dict[str, Any]) -> list[Metric]:
    """Sum of `docker stats` MEM USAGE of all services after ``idle_s`` without runs."""
    time.sleep(idle_s)
    totals, per_service = [], []
    for _ in range(samples):
        usage = stack.service_memory_mib()
        per_service.append(usage)
        totals.append(sum(usage.values()))
        time.sleep(3)
    details["idle_memory_mib"] = {"per_service": per_service, "load": load_average()}
    monitoring = [sum(mib for service, mib in usage.items() if service in MONITORING_SERVICES) for usage in per_service]
    return [
        Metric(
            f"idle memory: all {len(per_service[0])} services",
            "MiB",
            totals,
            f"deploy_docker {DEPLOY_DOCKER['idle_mib']} MiB (4 containers)",
            600.0,
        ),
        Metric(
            "idle memory: without monitoring (DAGSTER_MONITORING=0)",
            "MiB",
            [total - cost for total, cost in zip(totals, monitoring, strict=True)],
            "",
        ),
        Metric("idle memory: monitoring's cost (" + ", ".join(MONITORING_SERVICES) + ")", "MiB", monitoring, ""),
    ]


# --- 1. start-up -------------------------------------------------------------------------
def cold_starts(stack: BenchStack, repeat: int, details: dict[str, Any]) -> list[Metric]:
    """`down -v` then `up`: time to all services healthy and to both locations loaded."""
    healthy = Metric("cold start: up -> all services healthy", "s")
    loaded = Metric(
        "cold start: up -> both locations loaded",
        "s",
        reference=f"deploy_docker {DEPLOY_DOCKER['up_to_loaded_s']} s",
        target=6.0,
    )
    runs = []
    for _ in range(repeat):
        start = stack.cold_start()
        healthy.samples.append(start.healthy_s)
        loaded.samples.append(start.loaded_s)
        runs.append(
            {
                "healthy_s": start.healthy_s,
                "loaded_s": start.loaded_s,
                "services": start.services,
                "load": load_average(),
            }
        )
    details["cold_starts"] = runs
    return [healthy, loaded]


def redeploys(stack: BenchStack, location: str, repeat: int, details: dict[str, Any]) -> list[Metric]:
    """Code-only change of one location: rebuild its image, recreate its service, wait for the new code.

    The change (a comment with a fresh marker appended to definitions.py) is made in a temporary
    copy of the build context, used through an extra compose file that points the service's build
    there; the repository's files are never touched. "Loaded" means the webserver reports the
    location LOADED with a new versionKey (the new code server's id).
    """
    context = stack.workdir / "build-context"
    shutil.copytree(
        ROOT,
        context,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tools", ".pytest_cache", "__pycache__", "test-artifacts", "exports", ".secrets"
        ),
    )
    stack.override_file = stack.workdir / "redeploy.yml"
    stack.override_file.write_text(json.dumps({"services": {location: {"build": {"context": str(context)}}}}))
    definitions = context / "code_locations" / location / "src" / location / "definitions.py"
    rebuild = Metric(f"code-only rebuild of the {location} image", "s", reference="~1 s expected")
    recreate = Metric(f"redeploy: recreate {location} service", "s")
    to_loaded = Metric(f"redeploy: recreate -> new {location} code loaded", "s", target=3.0)
    runs = []
    try:
        for _ in range(repeat):
            with definitions.open("a") as handle:
                handle.write(f"# bench redeploy {uuid.uuid4().hex}\n")
            before = stack.locations()[location]["versionKey"]
            started = time.monotonic()
            stack.compose("build", location)
            rebuild.samples.append(time.monotonic() - started)
            started = time.monotonic()
            stack.recreate(location)
            recreate.samples.append(time.monotonic() - started)
            wait_for(
                functools.partial(stack.loaded_version, location, other_than=before),
                timeout=120,
                interval=0.1,
                what=f"the new {location} code to load",
            )
            to_loaded.samples.append(time.monotonic() - started)
            runs.append(
                {
                    "rebuild_s": rebuild.samples[-1],
                    "recreate_s": recreate.samples[-1],
                    "to_loaded_s": to_loaded.samples[-1],
                    "load": load_average(),
                }
            )
    finally:
        stack.override_file = None
    details["redeploys"] = runs
    return [rebuild, recreate, to_loaded]


# --- 2. run latency ----------------------------------------------------------------------
def run_latency(stack: BenchStack, repeat: int, details: dict[str, Any]) -> tuple[list[Metric], list[RunTimeline]]:
    """Launch -> SUCCESS of both jobs at seed size (after one discarded warm-up run each), by phase.

    Returns the rows and the all_assets_job timelines (their step times feed the overhead rows).
    """
    metrics: list[Metric] = []
    modular: list[RunTimeline] = []
    for job, location in (SIMPLE_JOB, MODULAR_JOB):
        launch_and_wait(stack, job, location)  # warm-up
        timelines = [launch_and_wait(stack, job, location) for _ in range(repeat)]
        reference = f"deploy_docker {DEPLOY_DOCKER['launch_to_success_s']} s (1 asset)"
        metrics.append(
            Metric(
                f"run {job}: launch -> SUCCESS",
                "s",
                [t.total_s for t in timelines],
                reference,
                4.5 if job == MODULAR_JOB[0] else None,
            )
        )
        for name, _, _ in PHASES:
            metrics.append(Metric(f"  {job}: {name}", "s", [t.phases()[name] for t in timelines]))
        details[f"runs_{job}"] = {
            "runs": [describe(t) for t in timelines],
            "median_phases_s": median_phases(timelines),
            "load": load_average(),
        }
        if job == MODULAR_JOB[0]:
            modular = timelines
    return metrics, modular


# --- 3. orchestration overhead -----------------------------------------------------------
def run_floor(scale: Scale, out_dir: Path) -> dict[str, Any]:
    """One floor run (bench/floor.py in a fresh process) against a local sample API of ``scale``.

    ``plain_process_s`` is the process's wall time without the import of the location's modules
    (and with them Dagster): what a pandas-only script would take.
    """
    with running_sample_api(users=scale.users, posts_per_user=scale.posts_per_user) as api:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(FLOOR_SCRIPT), "--api-url", api.url, "--out", str(out_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        process_s = time.monotonic() - started
    floor = json.loads(result.stdout)
    return {**floor, "process_s": process_s, "plain_process_s": process_s - floor["location_import_s"]}


def overhead(stack: BenchStack, modular: list[RunTimeline], repeat: int, details: dict[str, Any]) -> list[Metric]:
    """The 13 assets and their checks as plain functions in one process vs the same steps in a run."""
    floors = [run_floor(SEED, stack.workdir / "floor-seed") for _ in range(repeat)]
    floor = Metric(
        "floor: the 13 assets and their checks as plain functions",
        "s",
        [f["pipeline_s"] for f in floors],
        "one process, fetch included, imports excluded",
    )
    floor_process = Metric(
        "floor: the same as a fresh pandas-only process",
        "s",
        [f["plain_process_s"] for f in floors],
        "Dagster's import excluded",
    )
    steps = Metric(
        "run all_assets_job: first step start -> last step end",
        "s",
        [t.steps_s for t in modular],
        f"floor {floor.median:.3f} s",
    )
    per_asset = Metric(
        "orchestration overhead per asset",
        "ms",
        [(t.steps_s - floor.median) / MODULAR_ASSETS * 1000 for t in modular],
        "(run steps - floor) / 13",
    )
    details["floor_seed"] = floors
    details["floor_seed_median_steps_s"] = {
        key: statistics.median(f["steps_s"][key] for f in floors) for key in floors[0]["steps_s"]
    }
    return [floor, floor_process, steps, per_asset]


# --- 4. scale ----------------------------------------------------------------------------
def scale_runs(stack: BenchStack, scale: Scale, repeat: int, largest: bool, details: dict[str, Any]) -> list[Metric]:
    """all_assets_job at ``scale`` (wall time, peak memory of its container) vs the floor on the same data.

    A run that is OOM-killed is repeated with the next larger limit of RUN_MEMORY_LIMITS_GIB (the
    code locations are recreated with DAGSTER_MAX_RUN_MEMORY raised); the limit used is reported.
    """
    stack.resize_sample_api(scale.users, scale.posts_per_user)
    timelines: list[RunTimeline] = []
    attempts: list[dict[str, Any]] = []
    while len(timelines) < repeat:
        try:
            timelines.append(launch_and_wait(stack, *MODULAR_JOB, timeout=3600, poll_s=2.0, sample_memory=True))
        except RunFailed as failure:
            memory = failure.memory
            attempts.append(
                {
                    "limit_gib": memory.limit_mib / 1024 if memory else None,
                    "error": str(failure),
                    "memory": dataclasses.asdict(memory) if memory else None,
                }
            )
            larger = [gib for gib in RUN_MEMORY_LIMITS_GIB if memory and gib > memory.limit_mib / 1024]
            if not (memory and memory.oom_kills and larger):
                raise
            set_run_memory(stack, f"{larger[0]}g")
    limits = {t.memory.limit_mib for t in timelines if t.memory and t.memory.samples}
    limit = "/".join(f"{mib / 1024:g}g" for mib in sorted(limits)) or "?"
    floors = [run_floor(scale, stack.workdir / f"floor-{scale.users}") for _ in range(repeat)]
    details[f"scale_{scale.label}"] = {
        "users": scale.users,
        "posts": scale.posts,
        "run_memory_limit": limit,
        "failed_attempts": attempts,
        "runs": [describe(t) for t in timelines],
        "floors": floors,
        "load": load_average(),
    }

    floor_wall = statistics.median(f["plain_process_s"] for f in floors)
    floor_rss = statistics.median(f["plain_peak_rss_mib"] for f in floors)
    size = f"{scale.label} ({scale.users:,} users, {scale.posts:,} posts)"
    killed_at = ", ".join(f"{attempt['limit_gib']:g}g" for attempt in attempts)
    oom_note = f"; OOM-killed at {killed_at}" if attempts else ""
    return [
        Metric(
            f"scale {size}: run launch -> SUCCESS",
            "s",
            [t.total_s for t in timelines],
            f"floor {floor_wall:.2f} s (x{statistics.median(t.total_s for t in timelines) / floor_wall:.2f})",
            1.5 * floor_wall if largest else None,
            f"<= 1.5x floor = {1.5 * floor_wall:.1f} s" if largest else "",
        ),
        Metric(
            "  floor: one pandas-only process",
            "s",
            [f["plain_process_s"] for f in floors],
            f"{statistics.median(f['process_s'] for f in floors):.2f} s with Dagster's import",
        ),
        Metric("  run: first step start -> last step end", "s", [t.steps_s for t in timelines]),
        Metric(
            f"  run: peak RSS of the run worker (mem_limit {limit}{oom_note})",
            "MiB",
            [t.memory.worker_hwm_mib for t in timelines if t.memory and t.memory.samples],
            f"floor {floor_rss:.0f} MiB (x{_ratio(timelines, floor_rss):.2f})",
            2 * floor_rss if largest else None,
            f"<= 2x floor = {2 * floor_rss:.0f} MiB" if largest else "",
        ),
        Metric(
            "  run: container cgroup peak (RSS + page cache)",
            "MiB",
            [t.memory.cgroup_peak_mib for t in timelines if t.memory and t.memory.samples],
        ),
        Metric(
            "  floor: peak RSS, pandas only",
            "MiB",
            [f["plain_peak_rss_mib"] for f in floors],
            f"{statistics.median(f['peak_rss_mib'] for f in floors):.0f} MiB with Dagster imported",
        ),
    ]


def _ratio(timelines: list[RunTimeline], floor_rss: float) -> float:
    peaks = [t.memory.worker_hwm_mib for t in timelines if t.memory and t.memory.samples]
    return statistics.median(peaks) / floor_rss if peaks else float("nan")


def set_run_memory(stack: BenchStack, limit: str) -> None:
    """Set DAGSTER_MAX_RUN_MEMORY and recreate the code locations (their container context holds it)."""
    versions = {name: entry["versionKey"] for name, entry in stack.locations().items()}
    stack.write_env(DAGSTER_MAX_RUN_MEMORY=limit)
    stack.recreate(*versions)
    for name, before in versions.items():
        wait_for(
            functools.partial(stack.loaded_version, name, other_than=before),
            timeout=120,
            interval=0.5,
            what=f"{name} to reload",
        )
