"""Drive a real `docker compose` stack of this repo: compose, GraphQL, volumes.

Used by the end-to-end suite (tests/e2e) and the benchmarks (bench/). A
:class:`Stack` runs under its own compose project name and its own env file
(random secrets, a free gateway port), so it never touches the developer's
`.env` or running stack. Its code locations are the ones workspace.yaml lists.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import requests
from dagster_graphql import DagsterGraphQLClient

from template_tools.locations import ROOT, location_names

T = TypeVar("T")

LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus versionKey
    locationOrLoadError { __typename ... on PythonError { message causes { message } } }
} } } }
"""

TICKS_QUERY = """
query ($since: Float) { repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name sensorState { ticks(afterTimestamp: $since, statuses: [FAILURE]) { status error { message } } } }
    schedules { name scheduleState { ticks(afterTimestamp: $since, statuses: [FAILURE]) { status error { message } } } }
} } } }
"""
RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run {
    runId status jobName tags { key value }
    eventConnection(afterCursor: null) { events { __typename
        ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { error { message causes { message } } }
        ... on RunFailureEvent { pipelineFailureError: error { message } }
        ... on LogsCapturedEvent { fileKey stepKeys } } }
} } }
"""

RUNS_BY_TAG_QUERY = """
query ($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) { ... on Runs { results {
    runId status jobName tags { key value } } } }
}
"""

CAPTURED_LOGS_QUERY = """
query ($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], T | None], *, timeout: float, interval: float = 1.0, what: str) -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Stack:
    """A compose project of this repo, reachable through its gateway."""

    project: str
    workdir: Path
    user: str = "e2e"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    postgres_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    #: The checkout whose docker-compose.yml and workspace.yaml this stack runs.
    root: Path = ROOT
    #: Compose files merged over docker-compose.yml (e.g. the e2e suite's webhook sink).
    overrides: tuple[Path, ...] = ()
    #: Tag of the images this stack builds and runs (DAGSTER_IMAGE_TAG).
    image_tag: ClassVar[str] = "e2e"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env_file(self) -> Path:
        return self.workdir / "e2e.env"

    @property
    def compose_files(self) -> list[Path]:
        return [self.root / "docker-compose.yml", *self.overrides]

    @property
    def location_names(self) -> list[str]:
        """The code locations of this stack's workspace.yaml."""
        return location_names(self.root)

    def write_env_file(self, extra: dict[str, str]) -> None:
        """The env file: random secrets (which the stack's init service applies, as it does a
        .env's), this stack's gateway port and image tag, and ``extra``."""
        settings = {
            "POSTGRES_PASSWORD": self.postgres_password,
            "DAGSTER_UI_USER": self.user,
            "DAGSTER_UI_PASSWORD": self.password,
            "GATEWAY_PORT": str(self.port),
            "DAGSTER_IMAGE_TAG": self.image_tag,
            **extra,
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    @property
    def access_file(self) -> Path:
        """This stack's access file (DAGSTER_ACCESS_DIR): who may do what per team."""
        return self.workdir / "access" / "access.yaml"

    def set_access(self, text: str) -> None:
        """Replace the access file atomically, as `make ui-user` does (the auth service reads it live)."""
        self.access_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.access_file.with_name(".access.yaml.partial")
        partial.write_text(text)
        partial.replace(self.access_file)

    def write_env(self, extra: dict[str, str] | None = None) -> None:
        """The stack's settings: random secrets, its own port, a webhook sink for alerts, its own access
        file, and ``extra``."""
        self.set_access((self.root / "deploy" / "access" / "access.yaml").read_text())
        self.write_env_file(
            {
                "ALERT_WEBHOOK_URL": "http://webhook_sink:8080/alerts",
                "DAGSTER_ACCESS_DIR": str(self.access_file.parent),
                **(extra or {}),
            }
        )
        (self.workdir / "stack.json").write_text(
            json.dumps(
                {
                    "project": self.project,
                    "password": self.password,
                    "postgres_password": self.postgres_password,
                    "port": self.port,
                    "root": str(self.root),
                    "overrides": [str(path) for path in self.overrides],
                }
            )
        )

    @classmethod
    def reattach(cls, workdir: Path) -> Stack:
        """The stack a previous session left running (E2E_KEEP_STACK=1) in ``workdir``."""
        saved = json.loads((workdir / "stack.json").read_text())
        root, overrides = Path(saved.pop("root")), tuple(Path(path) for path in saved.pop("overrides"))
        return cls(workdir=workdir, root=root, overrides=overrides, **saved)

    # --- docker compose -----------------------------------------------------------
    def compose(
        self, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        files = [arg for path in self.compose_files for arg in ("-f", str(path))]
        command = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file), *files, *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`docker compose {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def up(self, *services: str, env: dict[str, str] | None = None, timeout: int = 300) -> None:
        """`up --wait` the whole stack, or (re)create just ``services`` (never their dependencies:
        that would recreate them with this call's environment)."""
        no_deps = ["--no-deps"] if services else []
        self.compose(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(timeout),
            *no_deps,
            *services,
            env=env,
            timeout=timeout + 60,
        )

    def down(self) -> None:
        """Remove everything of the project: run containers, services, network and volumes.

        The exports volume is removed by name: only run containers mount it (and the `tools`
        profile), so Docker creates it on the first run, unlabeled, and `down --volumes` skips it.
        """
        runs = self.docker(
            "ps", "-aq", "--filter", f"label=com.dagster-template.project={self.project}", check=False
        ).stdout.split()
        if runs:
            self.docker("rm", "--force", *runs, check=False)
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        self.docker("volume", "rm", "--force", f"{self.project}_exports", check=False)

    def services(self) -> list[dict[str, Any]]:
        """`docker compose ps` of the running services, as dicts."""
        out = self.compose("ps", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_id(self, service: str) -> str:
        return self.compose("ps", "--quiet", service).stdout.strip()

    def started(self, services: Sequence[str]) -> dict[str, str]:
        """Each service's container id and start time: a restart or a recreate changes them."""
        inspect = ("inspect", "--format", "{{.Id}} {{.State.StartedAt}}")
        return {service: self.docker(*inspect, self.container_id(service)).stdout.strip() for service in services}

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"`docker {' '.join(args)}` failed: {result.stderr}")
        return result

    def read_export(self, relative_path: str) -> str:
        """A file of the exports volume, read through a throw-away container."""
        return self.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{self.project}_exports:/exports:ro",
            "--entrypoint",
            "cat",
            f"{self.project}-dagster:{self.image_tag}",
            f"/exports/{relative_path}",
        ).stdout

    def diagnostics(self) -> str:
        """Everything useful when a test failed: services, their logs, run containers."""
        parts = [self.compose("ps", "--all", check=False).stdout]
        parts.append(self.compose("logs", "--no-color", "--tail", "150", check=False).stdout)
        parts.append(
            self.docker(
                "ps", "--all", "--filter", f"label=com.dagster-template.project={self.project}", check=False
            ).stdout
        )
        return "\n".join(parts)

    # --- the webserver, through the gateway --------------------------------------------
    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def add_user(self, name: str, password: str) -> None:
        """A local UI user with this password (`make ui-user`; its roles are the access file's)."""
        self.compose("run", "--rm", "--no-deps", "-T", "init", "add-user", name, "--password", password)

    def add_token(self, name: str) -> str:
        """A new API token named ``name`` (`make ui-token`): its value, shown this once."""
        out = self.compose("run", "--rm", "--no-deps", "-T", "init", "add-token", name).stdout
        return next(line.strip() for line in out.splitlines() if line.strip().startswith("dgt_"))

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        timeout: float = 30,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A GraphQL request through the gateway, as the stack's admin unless ``auth`` or ``headers`` say otherwise."""
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            auth=None if headers and "Authorization" in headers else (auth or self.auth),
            headers=headers,
            timeout=timeout,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def failed_ticks(self, since: float) -> list[str]:
        """Sensor and schedule ticks that failed after ``since`` (epoch seconds): "<name>: <error>"."""
        failed = []
        for repository in self.graphql(TICKS_QUERY, {"since": since})["repositoriesOrError"]["nodes"]:
            for kind, state in (("sensors", "sensorState"), ("schedules", "scheduleState")):
                for instigator in repository[kind]:
                    for tick in instigator[state]["ticks"]:
                        message = (tick["error"] or {}).get("message", "").strip().splitlines()
                        failed.append(f"{instigator['name']}: {message[0] if message else tick['status']}")
        return failed

    def deploy_command(self, *args: str) -> list[str]:
        """The command line of `make deploy` / `rollback` / ... (template_tools.deploy) against this stack."""
        stack_args = ["--root", str(self.root), "--project", self.project, "--env-file", str(self.env_file)]
        for path in self.compose_files:
            stack_args += ["-f", str(path)]
        return [sys.executable, "-m", "template_tools.deploy", *args, *stack_args]

    def deploy_tool(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`make deploy` / `rollback` / `releases` / `retire` (template_tools.deploy) against this stack."""
        return subprocess.run(
            self.deploy_command(*args),
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, **(env or {})},
        )

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient(
            "127.0.0.1", port_number=self.port, auth=requests.auth.HTTPBasicAuth(*self.auth), timeout=60
        )

    def locations(self) -> dict[str, dict[str, Any]]:
        entries = self.graphql(LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
        return {entry["name"]: entry for entry in entries}

    def loaded_version(self, location: str, other_than: str) -> str | None:
        """The location's versionKey (its code server's id) once it is loaded from a server other
        than the one whose versionKey was ``other_than``; None until then."""
        try:
            entry = self.locations().get(location)
        except (requests.RequestException, AssertionError):
            return None
        if (
            entry
            and entry["loadStatus"] == "LOADED"
            and entry["versionKey"] != other_than
            and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        ):
            return entry["versionKey"]
        return None

    def all_locations_loaded(self, names: Sequence[str] | None = None) -> bool:
        """Every location of ``names`` (default: all of workspace.yaml) is LOADED without error."""
        names = self.location_names if names is None else names
        try:
            locations = self.locations()
        except (requests.RequestException, AssertionError):
            return False
        return all(
            name in locations
            and locations[name]["loadStatus"] == "LOADED"
            and locations[name]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for name in names
        )

    def database_ready(self) -> bool:
        """Three queries in a row that touch every storage (run, event log, schedule) succeed."""
        touches_every_storage = """{
          runsOrError(limit: 1) { ... on Runs { results { eventConnection { events { __typename } } } } }
          repositoriesOrError { ... on RepositoryConnection { nodes { schedules { scheduleState { status } } } } }
        }"""
        for _ in range(3):
            try:
                self.graphql(touches_every_storage)
            except (requests.RequestException, AssertionError):
                return False
        return True

    def launch(self, job: str, location: str, **kwargs: Any) -> str:
        return self.client().submit_job_execution(job, repository_location_name=location, **kwargs)

    def run(self, run_id: str) -> dict[str, Any]:
        result = self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
        assert result["__typename"] == "Run", result
        return result

    def wait_for_run(
        self, run_id: str, *, timeout: float = 240, statuses: Sequence[str] = ("SUCCESS", "FAILURE", "CANCELED")
    ) -> dict[str, Any]:
        """Poll (every 2 s: polling harder slows the runs down on 2 cores) until the run ends."""

        def finished() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in statuses else None

        return wait_for(
            finished,
            timeout=timeout,
            interval=2,
            what=f"run {run_id} to reach {'/'.join(statuses)}",
        )

    @staticmethod
    def failure_text(run: dict[str, Any]) -> str:
        """Every message and error (with its causes) of a run's events, as one string."""
        parts = []
        for event in run["eventConnection"]["events"]:
            parts.append(event.get("message") or "")
            for error in (event.get("error"), event.get("pipelineFailureError")):
                if error:
                    parts.append(error["message"])
                    parts.extend(cause["message"] for cause in error.get("causes") or [])
        return "\n".join(parts)

    def runs_tagged(self, key: str, value: str) -> list[dict[str, Any]]:
        """Runs carrying the tag ``key=value``, newest first (tags flattened to a dict)."""
        runs = self.graphql(RUNS_BY_TAG_QUERY, {"key": key, "value": value})["runsOrError"]["results"]
        return [{**run, "tags": {t["key"]: t["value"] for t in run["tags"]}} for run in runs]

    def sample_api(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Call the sample API's admin endpoints from inside its container (it publishes no port)."""
        script = (
            "import json, sys, urllib.request as u\n"
            "data = sys.argv[3].encode() if sys.argv[3] != 'null' else None\n"
            "req = u.Request('http://127.0.0.1:8080' + sys.argv[2], data=data, method=sys.argv[1],"
            " headers={'Content-Type': 'application/json'})\n"
            "print(u.urlopen(req, timeout=10).read().decode())\n"
        )
        out = self.compose("exec", "-T", "sample_api", "python", "-c", script, method, path, json.dumps(payload)).stdout
        return json.loads(out)

    def failed_run(self, job: str, location: str) -> str:
        """A run of ``job`` that fails on bad data (the sample API answers /users with malformed
        JSON, and is reset after): its id."""
        self.sample_api("POST", "/__admin/config", {"mode": "malformed", "fault_paths": ["/users"]})
        try:
            run_id = self.launch(job, location)
            assert self.wait_for_run(run_id)["status"] == "FAILURE"
        finally:
            self.sample_api("POST", "/__admin/reset")
        return run_id

    def captured_logs(self, run_id: str, file_key: str) -> dict[str, str]:
        return self.graphql(CAPTURED_LOGS_QUERY, {"logKey": [run_id, "compute_logs", file_key]})["capturedLogs"]

    # --- monitoring, through the gateway ------------------------------------------------
    def prometheus_query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant PromQL query (Prometheus' HTTP API)."""
        response = requests.get(
            f"{self.url}/prometheus/api/v1/query", params={"query": promql}, auth=self.auth, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def webhooks_received(self) -> list[dict[str, Any]]:
        """What the e2e suite's webhook sink (tests/e2e/compose.e2e.yml) was sent: {"path", "body"}."""
        script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/received').read().decode())"
        return json.loads(self.compose("exec", "-T", "webhook_sink", "python", "-c", script).stdout)
