"""What per-team access costs: the login and the webserver's checks, on and off, in one run.

    .venv/bin/python -m bench.access     # part of `make bench`; alone: `make bench-access` (~5 min)

One stack (this template, compose project ``dagster-bench-access``) with one more service,
``webserver_stock``: the same image, workspace, instance and networks as the webserver, running
Dagster's own ``dagster-webserver`` (no identity, no permission checks, no audit log). A client
inside the stack (bench.access_client) sends the same requests, interleaved, three ways:

- B: to ``webserver_stock`` directly: Dagster OSS as it is;
- A, checks: to the stack's webserver directly, with a signed identity: the identity check, the
  permission checks, the audit log and the run's ``user`` tag;
- A, login + checks: through the gateway with an API token: also nginx's ``auth_request`` to the
  auth service.

A GraphQL query and a run launch (``launchRun``, with the daemon stopped so that the runs stay
queued), then the auth service's ``/verify`` alone, and its memory at idle before and after. The
target (issue: per-team access) is at most 5 ms added at the median, and 40 MiB for the auth
service. The stack is removed with its volumes at the end, also after an error.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench import access_client
from bench.harness import BenchStack
from bench.measure import load_average
from bench.report import Metric, Row, render
from template_tools.locations import ROOT, location_names
from testkit.stack import wait_for

PROJECT = "dagster-bench-access"
LAUNCH = {
    "selector": {
        "repositoryLocationName": "modular_assets",
        "repositoryName": "__repository__",
        "jobName": "all_assets_job",
    },
    "runConfigData": {},
}
ADDED_TARGET_MS = 5.0
MEMORY_TARGET_MIB = 40.0


def stock_webserver(config: dict[str, Any]) -> dict[str, Any]:
    """The override with ``webserver_stock``: the resolved webserver service, running Dagster's own webserver."""
    service = copy.deepcopy(config["services"]["webserver"])
    service.pop("build", None)  # the webserver's image, already built
    service.pop("depends_on", None)  # started after the stack is up
    service["command"] = [
        "sh",
        "-c",
        'exec /opt/venv/bin/dagster-webserver -h "$$WEBSERVER_HOST" -p 3000 -w /opt/dagster/dagster_home/workspace.yaml',
    ]
    service["environment"] = {**service["environment"], "WEBSERVER_HOST": "webserver_stock.ui", "DAGSTER_WATCHDOG": ""}
    # The code servers' networks too (location_networks joins only the stack's own services).
    locations: dict[str, dict[str, Any]] = {name: {} for name in location_names()}
    service["networks"] = {**service["networks"], **locations, "ui": {"aliases": ["webserver_stock.ui"]}}
    service["healthcheck"] = {
        "test": ["CMD", "python", "-m", "platform_services.healthcheck", "webserver"],
        "interval": "2s",
        "retries": 30,
    }
    return {"services": {"webserver_stock": service}}


def auth_memory(stack: BenchStack, samples: int = 5) -> list[float]:
    """The auth service's memory (docker stats), a few seconds apart."""
    values = []
    for _ in range(samples):
        values.append(stack.service_memory_mib()["auth"])
        time.sleep(2)
    return values


def token_works(stack: BenchStack, token: str) -> bool:
    response = requests.get(f"{stack.url}/server_info", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.status_code == 200


def measure(stack: BenchStack, queries: int, launches: int, settle_s: float) -> list[Row]:
    print("bench: building and starting the stack", file=sys.stderr, flush=True)
    stack.compose("build", timeout=3600)
    stack.up(timeout=600)
    override = stack.workdir / "webserver-stock.json"
    override.write_text(json.dumps(stock_webserver(json.loads(stack.compose("config", "--format", "json").stdout))))
    stack.override_file = override
    stack.up("webserver_stock", timeout=300)
    stack.compose("stop", "daemon")  # launched runs stay queued: no run containers compete for the CPU

    token = stack.add_token("bench")
    stack.set_access("tokens:\n  bench: admin\n")
    wait_for(lambda: token_works(stack, token) or None, timeout=60, interval=1, what="the bench token accepted")

    time.sleep(settle_s)
    memory_before = auth_memory(stack)
    print(f"bench: {queries} queries and {launches} launches each way (load {load_average()})", file=sys.stderr)
    config = {"token": token, "launch": LAUNCH, "queries": queries, "launches": launches}
    source = Path(access_client.__file__).read_text(encoding="utf-8")
    out = stack.compose("exec", "-T", "auth", "python", "-c", source, json.dumps(config), timeout=3600).stdout
    samples: dict[str, dict[str, list[float]]] = json.loads(out)
    time.sleep(settle_s)
    memory_after = auth_memory(stack)

    rows: list[Row] = []
    for kind, title in (("query", "GraphQL query (runsOrError)"), ("launch", "run launch (launchRun, queued)")):
        stock = samples[kind]["stock"]
        for path, how in (
            ("checks", "direct to the webserver: checks"),
            ("gateway", "through the gateway: login + checks"),
        ):
            name = f"{title}, {how}"
            ours = samples[kind][path]
            rows.append(Row(Metric(name, "ms", ours), Metric(name, "ms", stock)))
            added = statistics.median(ours) - statistics.median(stock)
            rows.append(
                Row(Metric("  added at the median", "ms", [added], "", ADDED_TARGET_MS, f"<= {ADDED_TARGET_MS:g} ms"))
            )
    rows.append(Row(Metric("auth service: /verify with a token", "ms", samples["verify"]["auth"])))
    rows.append(Row(Metric("auth service: memory at idle, before", "MiB", memory_before, "", MEMORY_TARGET_MIB)))
    rows.append(Row(Metric("auth service: memory at idle, after", "MiB", memory_after, "", MEMORY_TARGET_MIB)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--queries", type=int, default=300, help="GraphQL queries each way (default 300)")
    parser.add_argument("--launches", type=int, default=40, help="run launches each way (default 40)")
    parser.add_argument("--settle", type=float, default=20, help="seconds of idle before each memory sample")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dagster-bench-access-"))
    stack = BenchStack(project=PROJECT, workdir=workdir, label="template")
    stack.write_env_file({"DAGSTER_ACCESS_DIR": str(stack.access_file.parent)})
    stack.set_access((ROOT / "deploy" / "access" / "access.yaml").read_text(encoding="utf-8"))
    load_start = load_average()
    try:
        stack.down()  # leftovers of an aborted run
        rows = measure(stack, args.queries, args.launches, args.settle)
    finally:
        print("bench: removing the stack", file=sys.stderr, flush=True)
        stack.down()
    header = (
        f"per-team access: A = this stack's webserver (checks) and gateway (login), B = Dagster's own webserver; "
        f"load average {load_start} at start, {load_average()} at end"
    )
    print(render(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
