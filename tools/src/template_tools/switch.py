"""Making a release of a code location live on a running stack, without a gap (template_tools.deploy).

A release is the location's image tagged with its content id (instance_kit.releases). Making
one live, without a moment when the location cannot be reached:

1. A candidate code server of the new release starts beside the live one, on the location's
   network but without its name (a `docker compose run` container), and must load its code:
   the watchdog's verdict, which names the import error of broken code. Broken code is refused
   here, and the live release never stops serving.
2. The candidate takes the location's name (a network alias), and the old server drains:
   asked to shut down, it stops accepting calls and finishes those in flight. Clients resolve
   the name to both while that happens, and gRPC moves on to the candidate when the old one
   refuses a connection.
3. The webserver loads the location again, now that only the new release answers: Dagster's own
   watch would within seconds, but a refresh it began while both releases answered may mix their
   code. The reload is the deployer's (platform_services.webserver.reload), so it is audited.
4. Compose's own container for the location is created from the new release (so `docker compose
   up` and `ps` keep knowing it), and once it serves, the candidate drains the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instance_kit import releases

#: How long a new release may take to load its code, and an old one to finish its calls.
LOAD_TIMEOUT_SECONDS = 180
DRAIN_TIMEOUT_SECONDS = 90
HEALTH = "/opt/dagster/bin/health-status.sh"


class DeployError(Exception):
    """A deploy, rollback or listing that cannot go on; the message says why and what to do."""


@dataclass
class Compose:
    """One compose project of a checkout, driven with the docker CLI."""

    root: Path
    project: str | None = None
    env_file: Path | None = None
    files: Sequence[Path] = ()
    #: The compose command (make's COMPOSE, which may name the project, env file and files itself).
    base: Sequence[str] = ("docker", "compose")
    _config: dict[str, Any] | None = field(default=None, repr=False)

    def command(self, *args: str) -> list[str]:
        options = ["-p", self.project] if self.project else []
        options += ["--env-file", str(self.env_file)] if self.env_file else []
        for path in self.files:
            options += ["-f", str(path)]
        return [*self.base, *options, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            self.command(*args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise DeployError(f"`docker compose {' '.join(args)}` failed:\n{result.stderr.strip()}")
        return result.stdout

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = json.loads(self.run("config", "--format", "json"))
        return self._config

    @property
    def name(self) -> str:
        return str(self.config["name"])

    def image(self, location: str) -> str:
        """The location's image as compose names it (``<project>-<location>:<DAGSTER_IMAGE_TAG>``)."""
        return str(self.config["services"][location]["image"])

    def releases_dir(self) -> Path:
        return self.root / "releases" / self.name

    def containers(self, location: str) -> list[Container]:
        """The location's containers: compose's own and any candidate of a deploy."""
        out = docker(
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={self.name}",
            "--filter",
            f"label=com.docker.compose.service={location}",
            # Containers compose made (its own and `run`'s): run containers carry the image's
            # project and service labels too, but not this one.
            "--filter",
            "label=com.docker.compose.oneoff",
            "--format",
            '{{.ID}}|{{.Names}}|{{.State}}|{{.Label "com.docker.compose.oneoff"}}',
        )
        found = []
        for line in out.splitlines():
            cid, name, state, oneoff = line.split("|")
            found.append(Container(cid, name, state, oneoff == "True"))
        return found


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str
    candidate: bool  # a `docker compose run` container: a deploy's candidate


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise DeployError(f"`docker {' '.join(args[:3])} ...` failed: {result.stderr.strip()}")
    return result.stdout


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


@dataclass
class Location:
    name: str
    team: str
    host: str


def health(container: str) -> tuple[bool | None, str]:
    """(True, _) when the server loaded its code; (False, why) when it cannot; (None, why) while it starts."""
    state = docker("inspect", "--format", "{{.State.Status}}", container, check=False).strip()
    if state in ("exited", "dead", ""):
        return False, f"the container {state or 'is gone'}"
    probe = subprocess.run(["docker", "exec", container, HEALTH], capture_output=True, text=True, timeout=30)
    verdict = probe.stdout.strip()
    if probe.returncode == 0:
        return True, verdict
    return (False if "failed to load" in verdict else None), verdict


def wait_serving(container: str, timeout: float = LOAD_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok, verdict = health(container)
        if ok:
            return
        if ok is False or time.monotonic() > deadline:
            logs = docker("logs", "--tail", "30", container, check=False, timeout=30)
            problem = verdict if ok is False else f"not serving after {timeout:.0f} s ({verdict})"
            raise DeployError(f"{problem}\n--- its last log lines ---\n{logs.strip()}")
        time.sleep(0.25)


def drain(container: Container) -> None:
    """Retire a server: no restart, no new calls, the calls in flight finish, then it is removed."""
    docker("update", "--restart", "no", container.id, check=False)
    if container.state == "running":
        shutdown = ["exec", container.id, "python", "-m", "platform_services.grpc_probe", "shutdown"]
        if subprocess.run(["docker", *shutdown], capture_output=True, timeout=60).returncode != 0:
            docker("stop", container.id, check=False)  # an image without the drain: a plain stop
        # Calls still in flight after the grace period: removed below regardless.
        with suppress(subprocess.TimeoutExpired):
            docker("wait", container.id, check=False, timeout=DRAIN_TIMEOUT_SECONDS)
    docker("rm", "--force", container.id, check=False)


def network(compose: Compose, location: str) -> str:
    return f"{compose.name}_{location}"


def switch(compose: Compose, location: Location, tag: str, log: Log, by: str) -> None:
    """Make release ``tag`` (an image that exists) the location's live one, without a gap; ``by`` deploys it."""
    image = compose.image(location.name)
    directory = compose.releases_dir()
    record = releases.read(directory, location.name)
    old = [c for c in compose.containers(location.name) if not c.candidate]
    leftovers = [c for c in compose.containers(location.name) if c.candidate]
    for stale in leftovers:  # of an interrupted deploy: compose's container serves the name too
        drain(stale)
    previous_pointer = docker("image", "inspect", "--format", "{{.Id}}", image, check=False).strip()
    docker("tag", f"{repository(image)}:{tag}", image)
    env_file = releases.env_path(directory, location.name)
    previous_env = env_file.read_text(encoding="utf-8") if env_file.exists() else None
    releases.write_env(directory, location.name, tag)
    candidate = f"{compose.name}-{location.name}-release-{tag}"
    docker("rm", "--force", candidate, check=False)
    try:
        compose.run("run", "--detach", "--no-deps", "--name", candidate, location.name)
        log.step("the new release's server started beside the live one")
        wait_serving(candidate)
        log.step("the new release loaded its code")
    except DeployError as error:
        docker("rm", "--force", candidate, check=False)
        if previous_pointer:
            docker("tag", previous_pointer, image)
        releases.restore_env(env_file, previous_env)
        live = record.live or "the running one"
        raise DeployError(
            f"release {tag} of {location.name} does not serve its code, so it was not made live; "
            f"release {live} keeps serving. {error}"
        ) from None
    net = network(compose, location.name)
    docker("network", "disconnect", net, candidate)
    docker("network", "connect", "--alias", location.host, net, candidate)
    log.step("the new release serves the location's name", served=True)
    for container in old:
        drain(container)
    log.step("the previous release drained and stopped")
    reload_webserver(compose, location, by, log)
    # Compose's own container, from the new release; then the candidate steps aside the same way.
    compose.run("up", "--detach", "--no-deps", "--no-build", location.name, timeout=300)
    [own] = [c.id for c in compose.containers(location.name) if not c.candidate and c.state == "running"] or [""]
    if not own:
        raise DeployError(f"compose did not start {location.name}; release {tag} serves it from {candidate}")
    wait_serving(own)
    drain(Container(candidate, candidate, "running", True))
    log.step("compose's container runs the new release")


def reload_webserver(compose: Compose, location: Location, by: str, log: Log) -> None:
    """Have the webserver show the release that now serves alone (step 3 above)."""
    [webserver] = [c.id for c in compose.containers("webserver") if c.state == "running"] or [""]
    if not webserver:
        log.step("the webserver is not running: it loads the new release when it starts")
        return
    command = ["python", "-m", "platform_services.webserver.reload", location.name, "--by", by, "--team", location.team]
    result = subprocess.run(["docker", "exec", webserver, *command], capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        # The release serves; only the UI may lag until Dagster's own watch reloads it.
        log.step(f"warning: {result.stderr.strip()} (the UI shows it once Dagster's watch reloads {location.name})")
        return
    log.step("the webserver shows the new release")


@dataclass
class Log:
    """Timed progress lines on stderr; ``served`` is when the new release took the name."""

    started: float = field(default_factory=time.monotonic)
    served: float | None = None

    def step(self, text: str, *, served: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        if served:
            self.served = elapsed
        print(f"deploy: {elapsed:5.1f} s  {text}", file=sys.stderr, flush=True)
