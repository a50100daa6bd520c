"""The two stacks of the benchmark: A, this template as users run it, and B, "stock".

B runs the same code locations from the same images (A's, tagged with B's project name), with
Dagster's default settings for everything the template tunes:

- storage: dagster-postgres' own ``postgres`` storage, which opens a connection per call, instead
  of instance_kit's pooled one;
- the run queue: Dagster's 5 s dequeue interval, and no retries while a code server is down;
- the executor: Dagster's default multiprocess executor, chosen in each run's config (the same
  run config any user can give: platform_kit.executors);
- the code servers: ``dagster code-server start`` (a proxy plus a child) instead of one
  ``dagster api grpc`` process;
- health checks: Dagster's own CLI checks, every 10 s, and no watchdogs.
- the migration: ``dagster instance migrate`` on every start (A skips it when already done).

Everything else (networks, volumes, limits, the run launcher's policy, concurrency limits) is A's,
so a difference between the two is the settings', not the deployment's. The compose part is
bench/stock.yml; the instance part is derived here from dagster.yaml, so B follows A's changes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from bench.harness import BenchStack
from template_tools.locations import ROOT, location_names

#: B's compose override; a compose file, so it stays next to bench/README.md, not in the package.
STOCK_COMPOSE = ROOT / "bench" / "stock.yml"
#: The run config of B's runs: Dagster's default executor.
MULTIPROCESS: dict[str, Any] = {"execution": {"config": {"multiprocess": {}}}}


def stock_instance(config: dict[str, Any]) -> dict[str, Any]:
    """A's instance config (dagster.yaml) with Dagster's defaults for the storage and the run queue.

    B's run queue is Dagster's QueuedRunCoordinator with its defaults (5 s dequeue interval, no
    retries while a code server is down), which also leaves out A's tagging of runs with the user.
    """
    stock = copy.deepcopy(config)
    storage = stock.pop("storage")
    try:
        postgres_db = storage["custom"]["config"]["postgres_db"]
        stock.pop("run_coordinator")
    except KeyError as missing:
        raise SystemExit(f"bench: dagster.yaml no longer has {missing}: update bench/src/bench/variants.py") from None
    stock["storage"] = {"postgres": {"postgres_db": postgres_db}}
    return stock


def template_stack(project: str, workdir: Path) -> BenchStack:
    """A: docker-compose.yml as it is."""
    workdir.mkdir(parents=True, exist_ok=True)
    return BenchStack(project=project, workdir=workdir, label="template")


def stock_stack(project: str, workdir: Path) -> BenchStack:
    """B: docker-compose.yml with bench/stock.yml, its instance config and a stock entry per location."""
    workdir.mkdir(parents=True, exist_ok=True)
    instance = workdir / "dagster.yaml"
    instance.write_text(
        yaml.safe_dump(stock_instance(yaml.safe_load((ROOT / "dagster.yaml").read_text())), sort_keys=False)
    )
    code_location = yaml.safe_load(STOCK_COMPOSE.read_text())["x-stock-code-location"]
    locations = workdir / "stock-locations.yml"
    locations.write_text(json.dumps({"services": {name: code_location for name in location_names()}}, indent=2))
    stack = BenchStack(
        project=project, workdir=workdir, label="stock", overrides=(STOCK_COMPOSE, locations), run_config=MULTIPROCESS
    )
    stack.settings["STOCK_INSTANCE"] = str(instance)
    return stack


def share_images(source: BenchStack, target: BenchStack) -> None:
    """Tag the images ``source`` built with ``target``'s names, so that both run the very same images."""
    prefix = f"{source.project}-"
    for image in source.compose("config", "--images").stdout.split():
        if image.startswith(prefix):
            name = image.removeprefix(prefix).rsplit(":", 1)[0]
            source.docker("tag", image, target.image(name))
