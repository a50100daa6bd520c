"""The benchmark's stack: the e2e suite's :class:`Stack` with its own project, env file and compose
files, plus what the measurements need (a timed cold start, location versions, container memory).

Only ``docker-compose.yml`` is used (not the e2e override), so the stack measured is the one users
run. Everything lives under its own compose project (``dagster-bench`` by default) and image tag
(``bench``), so it never touches the developer's stack or the end-to-end suite's.
"""

from __future__ import annotations

import functools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import requests

from template_tools.locations import location_names
from testkit.stack import Stack, wait_for

#: The images the stack builds, by the name part after "<project>-": the instance's and one per location.
DAGSTER_IMAGES = ("dagster", *location_names())
BASE_IMAGE = "python:3.11-slim-bookworm"

INSTIGATORS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { id sensorState { status } }
    schedules { id scheduleState { status } }
} } } }
"""
STOP_SENSOR = "mutation ($id: String) { stopSensor(id: $id) { __typename } }"
START_SENSOR = "mutation ($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename } }"
SENSORS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name } sensors { id name sensorState { status } }
} } } }
"""
STOP_SCHEDULE = "mutation ($id: String) { stopRunningSchedule(id: $id) { __typename } }"

_MEMORY_UNITS = {
    "B": 1 / 2**20,
    "KiB": 1 / 2**10,
    "MiB": 1,
    "GiB": 2**10,
    "kB": 1e3 / 2**20,
    "MB": 1e6 / 2**20,
    "GB": 1e9 / 2**20,
}


def parse_docker_time(text: str) -> float:
    """Epoch seconds of a Docker RFC 3339 timestamp with nanoseconds (``...12.345678901Z``)."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


def parse_mib(text: str) -> float:
    """MiB of a `docker stats` size such as ``123.4MiB``."""
    match = re.fullmatch(r"([\d.]+)\s*([A-Za-z]+)", text.strip())
    if match is None:
        raise ValueError(f"not a docker stats size: {text!r}")
    number, unit = match.groups()
    return float(number) * _MEMORY_UNITS[unit]


def cgroup_dir(container_id: str, controller: str = "memory") -> Path | None:
    """A container's cgroup folder for ``controller`` ("memory" or "cpuacct"), on cgroup v1 or v2
    (where every controller shares one folder), with the cgroupfs or the systemd driver."""
    for candidate in (
        Path("/sys/fs/cgroup") / controller / "docker" / container_id,  # v1, cgroupfs
        Path("/sys/fs/cgroup") / controller / "system.slice" / f"docker-{container_id}.scope",  # v1, systemd
        Path("/sys/fs/cgroup/system.slice") / f"docker-{container_id}.scope",  # v2, systemd
        Path("/sys/fs/cgroup/docker") / container_id,  # v2, cgroupfs
    ):
        if candidate.exists():
            return candidate
    return None


def cpu_seconds(container_id: str) -> float | None:
    """CPU time a container has used since it started (its cgroup's counter), or None if unreadable."""
    folder = cgroup_dir(container_id, "cpuacct")
    if folder is None:
        return None
    if (folder / "cpuacct.usage").exists():  # v1: nanoseconds
        return int((folder / "cpuacct.usage").read_text()) / 1e9
    for line in (folder / "cpu.stat").read_text().splitlines():  # v2: microseconds
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return None


@dataclass
class StartTimes:
    """One `up`: seconds to every service healthy and to every location loaded."""

    healthy_s: float
    loaded_s: float
    services: dict[str, dict[str, float | None]]
    """Per container: seconds after `up` began until it started and first reported healthy."""


@dataclass
class BenchStack(Stack):
    """A compose project of this repo for benchmarks (see the module docstring)."""

    user: str = "bench"
    label: str = "template"
    """Which variant this is: "template" (A) or "stock" (B, bench.variants)."""
    run_config: dict[str, Any] = field(default_factory=dict)
    """Run config of every run the benchmark launches (B's asks for the multiprocess executor)."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra variables of the env file, e.g. ``DAGSTER_MAX_RUN_MEMORY``."""
    override_file: Path | None = None
    """An extra compose file (the redeploy measurement's build context), or None."""
    image_tag: ClassVar[str] = "bench"

    @property
    def env_file(self) -> Path:
        return self.workdir / "bench.env"

    @property
    def compose_files(self) -> list[Path]:
        """docker-compose.yml (not the e2e override), the variant's overrides and the override file."""
        extra = [self.override_file] if self.override_file else []
        return [self.root / "docker-compose.yml", *self.overrides, *extra]

    def write_settings(self, **settings: str) -> None:
        """Write the env file: random secrets, a free gateway port, the bench tag and ``settings``."""
        self.settings.update(settings)
        self.write_env_file(self.settings)

    def image(self, name: str) -> str:
        """The full name of one of this project's images, e.g. ``dagster-bench-dagster:bench``."""
        return f"{self.project}-{name}:{self.image_tag}"

    # --- life cycle ---------------------------------------------------------------------
    def stop(self) -> None:
        """`down` keeping the volumes (and the run containers' exports volume)."""
        self.compose("down", "--remove-orphans", "--timeout", "10", timeout=300)

    def start(self, fresh: bool) -> StartTimes:
        """From nothing running, time `up` until every service is healthy and every location is
        loaded: a cold start (``fresh``: the volumes removed first) or a warm one (volumes kept)."""
        if fresh:
            self.down()
        else:
            self.stop()
        started_wall = time.time()
        started = time.monotonic()

        # Both clocks run from the same `up`: the locations are polled while it still waits for
        # health checks (the UI is usable before the last service, e.g. the daemon, is healthy).
        def up_until_healthy() -> float:
            self.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", "300", timeout=400)
            return time.monotonic() - started

        loaded_s: float | None = None
        with ThreadPoolExecutor(max_workers=1) as pool:
            up = pool.submit(up_until_healthy)
            while not up.done():
                if loaded_s is None and self.all_locations_loaded():
                    loaded_s = time.monotonic() - started
                time.sleep(0.25)
            healthy_s = up.result()  # raises if `up` failed
        if loaded_s is None:
            wait_for(self.all_locations_loaded, timeout=120, interval=0.25, what="every location loaded")
            loaded_s = time.monotonic() - started
        return StartTimes(healthy_s, loaded_s, self.service_start_times(started_wall))

    def service_start_times(self, since: float) -> dict[str, dict[str, float | None]]:
        """For each container: seconds after ``since`` (epoch) it started and first probed healthy.

        "healthy" is the end of the first passing probe in Docker's health log (the log keeps the
        last 5 probes, so it is None once they have all been passing); for the one-shot migration
        it is when the container exited.
        """
        ids = self.compose("ps", "--all", "--quiet").stdout.split()
        times: dict[str, dict[str, float | None]] = {}
        for info in json.loads(self.docker("inspect", *ids).stdout):
            state = info["State"]
            service = info["Config"]["Labels"]["com.docker.compose.service"]
            healthy: float | None = None
            if state.get("Health"):
                log = state["Health"]["Log"]
                first_ok = next((probe for probe in log if probe["ExitCode"] == 0), None)
                complete = len(log) < 5 or log[0]["ExitCode"] != 0
                if first_ok and complete:
                    healthy = parse_docker_time(first_ok["End"]) - since
            elif state["Status"] == "exited":
                healthy = parse_docker_time(state["FinishedAt"]) - since
            times[service] = {"started": parse_docker_time(state["StartedAt"]) - since, "healthy": healthy}
        return times

    def recreate(self, *services: str) -> None:
        """Recreate ``services`` from their current images and env (no build, no dependencies)."""
        self.compose("up", "--detach", "--no-deps", "--no-build", "--force-recreate", *services)

    # --- GraphQL ------------------------------------------------------------------------
    def stop_automation(self) -> int:
        """Stop every running sensor and schedule, so that only the benchmark launches runs.

        (source_change_sensor would otherwise start a run whenever the benchmark resizes the
        sample API.) Returns how many were stopped.
        """
        running = [
            (STOP_SENSOR if kind == "sensors" else STOP_SCHEDULE, instigator["id"])
            for repository in self.graphql(INSTIGATORS_QUERY)["repositoriesOrError"]["nodes"]
            for kind, state in (("sensors", "sensorState"), ("schedules", "scheduleState"))
            for instigator in repository[kind]
            if instigator[state]["status"] == "RUNNING"
        ]
        for mutation, instigator_id in running:
            # Right after start-up the webserver may still answer 500 while it loads: retry briefly.
            wait_for(
                functools.partial(self._try_graphql, mutation, {"id": instigator_id}),
                timeout=30,
                interval=1,
                what=f"stopping {instigator_id}",
            )
        return len(running)

    def _try_graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self.graphql(query, variables)
        except requests.RequestException:
            return None

    # --- the sample API -----------------------------------------------------------------
    def resize_sample_api(self, users: int, posts_per_user: int) -> None:
        """Change the stack's sample API size at run time (its admin endpoint, from inside)."""
        self.sample_api("POST", "/__admin/config", {"users": users, "posts_per_user": posts_per_user})

    def set_sensors(self, running: bool) -> list[str]:
        """Start (or stop) every sensor; return their names."""
        sensors = [
            (sensor["id"], sensor["name"], sensor["sensorState"]["status"], repository)
            for repository in self.graphql(SENSORS_QUERY)["repositoriesOrError"]["nodes"]
            for sensor in repository["sensors"]
        ]
        for sensor_id, name, status, repository in sensors:
            if (status == "RUNNING") == running:
                continue
            selector = {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "sensorName": name,
            }
            if running:
                self.graphql(START_SENSOR, {"selector": selector})
            else:
                self.graphql(STOP_SENSOR, {"id": sensor_id})
        return [name for _, name, _, _ in sensors]

    # --- Docker measurements ---------------------------------------------------------
    def container_ids(self) -> dict[str, str]:
        """Full id -> service name of each running container of the project."""
        ids = self.compose("ps", "--quiet").stdout.split()
        out = self.docker(
            "inspect", "--format", '{{.Id}} {{index .Config.Labels "com.docker.compose.service"}}', *ids
        ).stdout
        return dict(line.split() for line in out.splitlines())

    def service_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each running service has used so far, from its container's cgroup."""
        usage = {}
        for container, service in self.container_ids().items():
            seconds = cpu_seconds(container)
            if seconds is None:
                raise RuntimeError(f"cannot read the cgroup CPU counter of {service} ({container[:12]})")
            usage[service] = seconds
        return usage

    def service_memory_mib(self) -> dict[str, float]:
        """`docker stats --no-stream` MEM USAGE of each running service, in MiB."""
        services = self.container_ids()
        out = self.docker("stats", "--no-stream", "--format", "{{json .}}", *services).stdout
        usage: dict[str, float] = {}
        for line in out.splitlines():
            row = json.loads(line)
            service = next(name for cid, name in services.items() if cid.startswith(row["ID"]))
            usage[service] = parse_mib(row["MemUsage"].split("/")[0])
        return usage

    def image_size_mb(self, image: str) -> float:
        """`docker image inspect` Size in MB (10^6 bytes, as `docker images` shows it)."""
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6
