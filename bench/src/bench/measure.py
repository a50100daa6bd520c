"""The measurements. Each function measures one stack (A or B) and returns its table rows; run.py
pairs A's rows with B's by name. Details that do not fit the table (per service, per phase, per
step, per run) go into ``details``, keyed by the stack's label.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BASE_IMAGE, DAGSTER_IMAGES, BenchStack, wait_for
from bench.report import HISTORICAL_DEPLOY_DOCKER, Metric
from bench.runs import (
    PHASES,
    RunFailed,
    RunTimeline,
    describe,
    launch_and_wait,
    launch_batch,
    median_phases,
    wait_for_batch,
)
from template_tools.locations import CodeLocation
from testkit.sample_api import running_sample_api

SIMPLE_JOB = ("data_extraction_job", "simple_ops")
MODULAR_JOB = ("all_assets_job", "modular_assets")
MODULAR_ASSETS = 13
#: The throughput batch cycles through these: both locations, ops and asset jobs, small and large.
THROUGHPUT_MIX = (SIMPLE_JOB, MODULAR_JOB, ("user_assets_job", "simple_ops"), ("sources_job", "modular_assets"))
#: Run memory limits (GiB) to raise DAGSTER_MAX_RUN_MEMORY to, in turn, when a scale run is OOM-killed.
RUN_MEMORY_LIMITS_GIB = (2, 4, 8, 12)
#: What DAGSTER_MONITORING=0 leaves out.
MONITORING_SERVICES = ("metrics", "prometheus", "alertmanager")
#: Host processes of the Docker engine (health checks are `docker exec`s: they cost CPU here too).
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc")


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


# --- footprint (A only: B runs the same images) -------------------------------------------
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
            historical, label = HISTORICAL_DEPLOY_DOCKER["webserver_image_mb"], "image: webserver/daemon"
        else:
            historical, label = HISTORICAL_DEPLOY_DOCKER["code_location_image_mb"], f"image: code location {name}"
        rows.append(
            Metric(
                label, "MB", [size], f"base {base:.0f} MB (+{size - base:.0f}); historical deploy_docker {historical}"
            )
        )
    return rows


# --- start-up and idle ------------------------------------------------------------------
def start(stack: BenchStack, fresh: bool, details: dict[str, Any]) -> list[Metric]:
    """One cold (``fresh``) or warm start: `up` to all services healthy and to every location loaded."""
    kind = "cold" if fresh else "warm"
    times = stack.start(fresh)
    details.setdefault(f"{kind}_starts", []).append(
        {"healthy_s": times.healthy_s, "loaded_s": times.loaded_s, "services": times.services, "load": load_average()}
    )
    what = "down -v, then up" if fresh else "down, then up (volumes kept)"
    return [
        Metric(f"{kind} start: up -> every location loaded", "s", [times.loaded_s], what, 6.0 if fresh else 8.0),
        Metric(f"  {kind} start: up -> all services healthy (up --wait returns)", "s", [times.healthy_s]),
    ]


def _engine_cpu_seconds() -> float | None:
    """CPU seconds used so far by the Docker engine's host processes, or None if /proc shows none."""
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name in ENGINE_PROCESSES or name.startswith("containerd-shim"):
            found = True
            total += (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks (USER_HZ 100)
    return total if found else None


def _no_runs_in_progress(stack: BenchStack) -> bool:
    query = "{ runsOrError(filter: {statuses: [QUEUED, STARTING, STARTED]}) { ... on Runs { count } } }"
    return stack.graphql(query)["runsOrError"]["count"] == 0


def idle(stack: BenchStack, settle_s: float, window_s: float, details: dict[str, Any]) -> list[Metric]:
    """CPU (from each container's cgroup counter) and memory of the whole stack with no run in progress.

    Sensors and schedules run as deployed. Waits until no run is queued or running, then
    ``settle_s``, then counts the CPU used over ``window_s``, in CPU-seconds per minute.
    """
    wait_for(functools.partial(_no_runs_in_progress, stack), timeout=300, interval=3, what="no run in progress")
    time.sleep(settle_s)
    before, engine_before, started = stack.service_cpu_seconds(), _engine_cpu_seconds(), time.monotonic()
    time.sleep(window_s)
    after, engine_after = stack.service_cpu_seconds(), _engine_cpu_seconds()
    per_minute = 60 / (time.monotonic() - started)
    cpu = {service: (after[service] - before[service]) * per_minute for service in after if service in before}
    memory = stack.service_memory_mib()
    details.setdefault("idle", []).append({"cpu_s_per_min": cpu, "memory_mib": memory, "load": load_average()})
    monitoring_cpu = sum(value for service, value in cpu.items() if service in MONITORING_SERVICES)
    monitoring_mib = sum(value for service, value in memory.items() if service in MONITORING_SERVICES)
    top = ", ".join(f"{service} {value:.1f}" for service, value in sorted(cpu.items(), key=lambda kv: -kv[1])[:3])
    engine = (
        [(engine_after - engine_before) * per_minute] if engine_before is not None and engine_after is not None else []
    )
    return [
        Metric(
            f"idle CPU: all {len(cpu)} services (cgroups)",
            "CPU-s/min",
            [sum(cpu.values())],
            f"most: {top}",
            3.0,
            "<= 3 CPU-s/min (0.05 core)",
        ),
        Metric("  idle CPU: monitoring (" + ", ".join(MONITORING_SERVICES) + ")", "CPU-s/min", [monitoring_cpu]),
        Metric(
            "  idle CPU: Docker engine on the host (dockerd, containerd, shims)",
            "CPU-s/min",
            engine,
            "health checks are `docker exec`s: outside the containers' cgroups",
        ),
        Metric(f"idle memory: all {len(memory)} services", "MiB", [sum(memory.values())], "", 600.0),
        Metric("  idle memory: monitoring (" + ", ".join(MONITORING_SERVICES) + ")", "MiB", [monitoring_mib]),
    ]


# --- run latency -------------------------------------------------------------------------
def run_latency(stack: BenchStack, repeat: int, details: dict[str, Any]) -> tuple[list[Metric], list[RunTimeline]]:
    """Launch -> SUCCESS of both jobs at seed size (after one discarded warm-up run each), by phase.

    Returns the rows and the all_assets_job timelines (their step times feed the overhead rows).
    """
    metrics: list[Metric] = []
    modular: list[RunTimeline] = []
    for job, location in (SIMPLE_JOB, MODULAR_JOB):
        launch_and_wait(stack, job, location)  # warm-up
        timelines = [launch_and_wait(stack, job, location) for _ in range(repeat)]
        target = 0.25 if job == MODULAR_JOB[0] else None
        metrics.append(
            Metric(f"run {job}: launch -> SUCCESS", "s", [t.total_s for t in timelines], ratio_target=target)
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


# --- throughput --------------------------------------------------------------------------
def throughput(stack: BenchStack, count: int, details: dict[str, Any]) -> list[Metric]:
    """``count`` runs queued at once over both locations (THROUGHPUT_MIX), until all have ended.

    Runs per minute from the first launch to the last run's end; launch -> end of each run (its
    wait in the queue included). The instance's concurrency limits are the same for A and B.
    """
    batch = f"throughput-{uuid.uuid4().hex[:8]}"
    jobs = [THROUGHPUT_MIX[i % len(THROUGHPUT_MIX)] for i in range(count)]
    runs = wait_for_batch(stack, batch, launch_batch(stack, batch, jobs), timeout=120 + 60 * count)
    failed = [run for run in runs if run.status != "SUCCESS"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} throughput runs did not succeed: {failed[:3]}")
    first, last = min(run.submitted for run in runs), max(run.ended or 0 for run in runs)
    totals = sorted(run.total_s for run in runs)
    p95 = totals[min(len(totals) - 1, round(0.95 * (len(totals) - 1)))]
    details["throughput"] = {
        "runs": [dataclasses.asdict(run) for run in runs],
        "wall_s": last - first,
        "load": load_average(),
    }
    return [
        Metric(
            f"throughput: {count} queued runs, both locations",
            "runs/min",
            [count / (last - first) * 60],
            " + ".join(sorted({job for job, _ in THROUGHPUT_MIX})),
            ratio_target=3.0,
            higher_is_better=True,
        ),
        Metric("  throughput: launch -> end of a run, p50", "s", [statistics.median(totals)]),
        Metric("  throughput: launch -> end of a run, p95", "s", [p95]),
    ]


# --- orchestration overhead -------------------------------------------------------------
def run_floor(scale: Scale, out_dir: Path) -> dict[str, Any]:
    """One floor run (bench.floor in a fresh process) against a local sample API of ``scale``.

    ``plain_process_s`` is the process's wall time without the import of the location's modules
    (and with them Dagster): what a pandas-only script would take.
    """
    # In modular_assets' own environment (its lock, as in its image); -P: nothing from bench/ shadows a module.
    python = CodeLocation("modular_assets").bin() / "python"
    with running_sample_api(users=scale.users, posts_per_user=scale.posts_per_user) as api:
        started = time.monotonic()
        result = subprocess.run(
            [str(python), "-P", str(Path(__file__).with_name("floor.py")), "--api-url", api.url, "--out", str(out_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        process_s = time.monotonic() - started
    floor = json.loads(result.stdout)
    return {**floor, "process_s": process_s, "plain_process_s": process_s - floor["location_import_s"]}


def floor_runs(
    scale: Scale, repeat: int, out_dir: Path, cache: dict[Scale, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``repeat`` floor runs at ``scale``, measured once per benchmark (both stacks share them)."""
    if scale not in cache:
        cache[scale] = [run_floor(scale, out_dir / f"floor-{scale.users}") for _ in range(repeat)]
    return cache[scale]


def overhead(modular: list[RunTimeline], floors: list[dict[str, Any]], details: dict[str, Any]) -> list[Metric]:
    """The 13 assets and their checks as plain functions in one process vs the same steps in a run."""
    floor = Metric(
        "floor: the 13 assets and their checks as plain functions",
        "s",
        [f["pipeline_s"] for f in floors],
        "one process, fetch included, imports excluded",
        shared=True,
    )
    floor_process = Metric(
        "floor: the same as a fresh pandas-only process",
        "s",
        [f["plain_process_s"] for f in floors],
        "Dagster's import excluded",
        shared=True,
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


# --- scale ------------------------------------------------------------------------------
def scale_runs(
    stack: BenchStack,
    scale: Scale,
    repeat: int,
    largest: bool,
    floor_cache: dict[Scale, list[dict[str, Any]]],
    details: dict[str, Any],
) -> list[Metric]:
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
    floors = floor_runs(scale, repeat, stack.workdir, floor_cache)
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
            shared=True,
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
            shared=True,
        ),
    ]


def _ratio(timelines: list[RunTimeline], floor_rss: float) -> float:
    peaks = [t.memory.worker_hwm_mib for t in timelines if t.memory and t.memory.samples]
    return statistics.median(peaks) / floor_rss if peaks else float("nan")


def set_run_memory(stack: BenchStack, limit: str) -> None:
    """Set DAGSTER_MAX_RUN_MEMORY and recreate the code locations (their container context holds it)."""
    versions = {name: entry["versionKey"] for name, entry in stack.locations().items()}
    stack.write_settings(DAGSTER_MAX_RUN_MEMORY=limit)
    stack.recreate(*versions)
    for name, before in versions.items():
        wait_for(
            functools.partial(stack.loaded_version, name, other_than=before),
            timeout=120,
            interval=0.5,
            what=f"{name} to reload",
        )


# --- metrics scrape ------------------------------------------------------------------------
def scrape_cost(stack: BenchStack, details: dict[str, Any]) -> list[Metric]:
    """How long Prometheus' scrapes of the metrics service took over the last 10 minutes (its own
    scrape_duration_seconds), with the number of runs the instance then held."""
    [series] = stack.prometheus_query('scrape_duration_seconds{job="dagster"}[10m]')
    durations = [float(value) * 1000 for _, value in series["values"]]
    runs = stack.graphql("{ runsOrError { ... on Runs { count } } }")["runsOrError"]["count"]
    details["scrape_ms"] = {"samples": durations, "runs": runs}
    return [
        Metric("metrics scrape: Prometheus' scrape of the exporter", "ms", durations, f"{runs} runs in the instance")
    ]
