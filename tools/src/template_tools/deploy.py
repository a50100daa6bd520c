"""make deploy / make rollback / make releases: each team ships its code location on its own.

    python -m template_tools.deploy deploy LOCATION [--no-test]   # build, test, switch without a gap
    python -m template_tools.deploy rollback LOCATION [--to TAG]   # back to the previous release
    python -m template_tools.deploy releases LOCATION              # what was deployed, when, by whom
    python -m template_tools.deploy record                         # make up: record what it built
    python -m template_tools.deploy retire LOCATION                # make remove-location: stop its servers

Options for another stack than this checkout's: --root, --project, --env-file, -f (as docker
compose takes them).

A release is the location's image tagged with its content id (instance_kit.releases);
template_tools.switch makes one live. Runs in flight keep running in their own containers. A deploy or rollback of a location that is
already being deployed is refused. With DAGSTER_DEPLOY_TOKEN set (a team's API token: the per-team
pipeline), the token must be an editor of the location's team, and the record names it.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests

from instance_kit import releases
from instance_kit.releases import Deployment, LocationReleases, Release
from template_tools.locations import ROOT, WorkspaceError, parse_workspace
from template_tools.switch import Compose, DeployError, Location, Log, docker, drain, network, repository, switch


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- the commands --------------------------------------------------------------------------
def release_id(image: str) -> str:
    """The content id an image was built with (/opt/dagster/release-id)."""
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", image, releases.RELEASE_ID_FILE)
    tag = out.strip()
    if not tag:
        raise DeployError(f"{image} has no release id in {releases.RELEASE_ID_FILE}: rebuild it (make up)")
    return tag


def git_commit(root: Path) -> str:
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return ""
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True).stdout
    return head.stdout.strip() + ("+changes" if dirty.strip() else "")


def find_location(root: Path, name: str) -> Location:
    try:
        locations = parse_workspace((root / "workspace.yaml").read_text(encoding="utf-8"))
    except (OSError, WorkspaceError) as error:
        raise DeployError(f"cannot read the code locations: {error}") from None
    for location in locations:
        if location.name == name:
            return Location(location.name, location.team, location.name)
    known = ", ".join(location.name for location in locations)
    raise DeployError(f"there is no code location {name!r} in workspace.yaml (there are: {known})")


# --- who deploys -------------------------------------------------------------------------
def deployer(compose: Compose, location: Location) -> str:
    """Who deploys: the API token in DAGSTER_DEPLOY_TOKEN (an editor of the location's team), or this user."""
    token = os.environ.get("DAGSTER_DEPLOY_TOKEN", "")
    if not token:
        return getpass.getuser()
    url = os.environ.get("DAGSTER_DEPLOY_URL") or gateway_url(compose)
    try:
        response = requests.get(f"{url}/__auth/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except requests.RequestException as error:
        raise DeployError(f"cannot ask the gateway at {url} who DAGSTER_DEPLOY_TOKEN is: {error}") from None
    if response.status_code != 200:
        raise DeployError(f"the gateway refused DAGSTER_DEPLOY_TOKEN ({response.status_code}: {response.text.strip()})")
    who = response.json()
    if not who.get("admin") and who.get("teams", {}).get(location.team) != "editor":
        raise DeployError(
            f"the token {who.get('user')!r} ({who.get('roles')}) may not deploy {location.name}: deploying needs the "
            f"editor role on its team {location.team!r} (make ui-token NAME=... TEAM={location.team} ROLE=editor)"
        )
    return f"{who['user']} (token)"


def gateway_url(compose: Compose) -> str:
    ports = compose.config["services"]["gateway"].get("ports") or []
    if not ports:
        raise DeployError("the gateway publishes no port: set DAGSTER_DEPLOY_URL to its address")
    port = ports[0]
    host = port.get("host_ip") or "127.0.0.1"
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port['published']}"


# --- one deploy at a time ----------------------------------------------------------------
@contextmanager
def exclusive(directory: Path, location: str, action: str) -> Iterator[None]:
    """Hold the location's deploy lock, or refuse: one deploy or rollback of a location at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".{location}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DeployError(
                f"a deploy or rollback of {location} is already running ({holder}); wait for it to finish, "
                "then run this again. The live release keeps serving."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{action} by pid {os.getpid()} since {now()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


# --- the switch --------------------------------------------------------------------------
def build(compose: Compose, location: Location, log: Log) -> str:
    """Build the location's image under a temporary tag; return its release id (tagged)."""
    image = compose.image(location.name)
    scratch = f"build-{os.getpid()}"
    compose.run("build", location.name, env={"DAGSTER_IMAGE_TAG": scratch}, timeout=3600)
    built = f"{repository(image)}:{scratch}"
    try:
        tag = release_id(built)
        docker("tag", built, f"{repository(image)}:{tag}")
    finally:
        docker("rmi", built, check=False)
    log.step(f"built release {tag}")
    return tag


def test(root: Path, location: Location, log: Log) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "test-location", f"LOCATION={location.name}"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise DeployError(
            f"the tests of {location.name} failed, so nothing was deployed:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    log.step("its tests passed")


def adopt_running(compose: Compose, location: Location, record: LocationReleases) -> None:
    """Before the first recorded deploy: the running release becomes a release, so it can be rolled back to."""
    if record.live is not None:
        return
    running = [c for c in compose.containers(location.name) if not c.candidate and c.state == "running"]
    if not running:
        return
    image_id = docker("inspect", "--format", "{{.Image}}", running[0].id).strip()
    tag = release_id(image_id)
    docker("tag", image_id, f"{repository(compose.image(location.name))}:{tag}")
    record.add(Release(tag, now(), ""))
    record.history.append(Deployment(tag, now(), "compose", "up"))


def finish(compose: Compose, record: LocationReleases, tag: str, by: str, action: str) -> None:
    record.history.append(Deployment(tag, now(), by, action))
    image = compose.image(record.location)
    for dropped in record.prune():
        docker("rmi", f"{repository(image)}:{dropped}", check=False)
    releases.write(compose.releases_dir(), record)


def deploy(compose: Compose, name: str, *, run_tests: bool) -> int:
    location = find_location(compose.root, name)
    log = Log()
    by = deployer(compose, location)
    with exclusive(compose.releases_dir(), location.name, "deploy"):
        if run_tests:
            test(compose.root, location, log)
        tag = build(compose, location, log)
        record = releases.read(compose.releases_dir(), location.name)
        adopt_running(compose, location, record)
        if record.live == tag and any(c.state == "running" for c in compose.containers(location.name)):
            print(f"deploy: {location.name} release {tag} is already live: nothing changed since it was built")
            return 0
        record.add(Release(tag, now(), git_commit(compose.root)))
        releases.write(compose.releases_dir(), record)
        switch(compose, location, tag, log, by)
        finish(compose, record, tag, by, "deploy")
    print(f"deploy: {location.name} runs release {tag} (new code served after {log.served or 0:.1f} s)")
    return 0


def rollback(compose: Compose, name: str, to: str | None) -> int:
    location = find_location(compose.root, name)
    log = Log()
    by = deployer(compose, location)
    with exclusive(compose.releases_dir(), location.name, "rollback"):
        record = releases.read(compose.releases_dir(), location.name)
        tag = to or record.previous
        if tag is None:
            raise DeployError(
                f"{location.name} has no previous release to roll back to (make releases LOCATION={name})"
            )
        release = record.release(tag)
        image = f"{repository(compose.image(location.name))}:{tag}"
        if release is None:
            owner = owner_of(compose, tag)
            where = f"it is a release of {owner}, not of {name}" if owner else f"{name} has no release {tag}"
            raise DeployError(f"cannot roll back to {tag}: {where} (make releases LOCATION={name} lists them)")
        if not docker("image", "inspect", "--format", "{{.Id}}", image, check=False).strip():
            raise DeployError(
                f"the image of release {tag} ({image}) is gone from this host, so it cannot be rolled back to "
                f"without a rebuild: check out its commit ({release.commit or 'unknown'}) and run "
                f"make deploy LOCATION={name}"
            )
        if tag == record.live:
            print(f"rollback: {name} already runs release {tag}")
            return 0
        switch(compose, location, tag, log, by)
        finish(compose, record, tag, by, "rollback")
    print(f"rollback: {name} runs release {tag} again (served after {log.served or 0:.1f} s)")
    return 0


def owner_of(compose: Compose, tag: str) -> str | None:
    directory = compose.releases_dir()
    for path in sorted(directory.glob("*.json")):
        if releases.read(directory, path.stem).release(tag):
            return path.stem
    return None


def list_releases(compose: Compose, name: str) -> int:
    location = find_location(compose.root, name)
    record = releases.read(compose.releases_dir(), location.name)
    if not record.releases:
        print(f"{name} has no recorded release yet: make deploy LOCATION={name} (or make up) records one")
        return 0
    print(f"{'release':<14} {'built':<21} {'commit':<20} deployed")
    for release in reversed(record.releases):
        deployments = [d for d in record.history if d.tag == release.tag]
        last = deployments[-1] if deployments else None
        live = "  <- live" if release.tag == record.live else ""
        when = f"{last.at} by {last.by} ({last.action})" if last else "never"
        print(f"{release.tag:<14} {release.built:<21} {release.commit or '-':<20} {when}{live}")
    return 0


def retire(compose: Compose, name: str) -> int:
    """After remove-location: stop the location's servers and take the shared services off its network.

    Its IO volume, release record and run history stay. Nothing else restarts.
    """
    containers = compose.containers(name)
    for container in containers:
        drain(container)
    net = network(compose, name)
    removed = False
    if docker("network", "inspect", "--format", "{{.Name}}", net, check=False).strip():
        attached = docker("network", "inspect", "--format", "{{range $id, $c := .Containers}}{{$id}} {{end}}", net)
        for container_id in attached.split():  # the shared services location_networks joined to it
            docker("network", "disconnect", "--force", net, container_id, check=False)
        docker("network", "rm", net)
        removed = True
    if containers or removed:
        print(
            f"retire: stopped {len(containers)} server(s) of {name}"
            + (f"; removed its network {net}" if removed else "")
        )
    return 0


def record_builds(compose: Compose) -> int:
    """`make up`, after its build: each location's built image is its live release (the classic recreate)."""
    by = getpass.getuser()
    for location in compose.config["services"]:
        service = compose.config["services"][location]
        if (service.get("build") or {}).get("target") != "code_location":
            continue
        image = compose.image(location)
        tag = release_id(image)
        docker("tag", image, f"{repository(image)}:{tag}")
        record = releases.read(compose.releases_dir(), location)
        if record.live == tag:
            continue
        record.add(Release(tag, now(), git_commit(compose.root)))
        finish(compose, record, tag, by, "up")
        print(f"make up: {location} release {tag}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="template_tools.deploy", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=["deploy", "rollback", "releases", "record", "retire"])
    parser.add_argument("location", nargs="?")
    parser.add_argument("--to", help="rollback: the release to return to (default: the previous one)")
    parser.add_argument("--no-test", action="store_true", help="deploy: skip the location's tests (CI ran them)")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--compose", default="docker compose", help="the compose command, as the Makefile's COMPOSE")
    parser.add_argument("--project", help="the compose project (default: compose's)")
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("-f", "--file", type=Path, action="append", default=[], help="a compose file (repeatable)")
    args = parser.parse_args(argv)
    compose = Compose(args.root.resolve(), args.project, args.env_file, args.file, shlex.split(args.compose))
    try:
        if args.command == "record":
            return record_builds(compose)
        if not args.location:
            raise DeployError(f"name the code location: make {args.command} LOCATION=<name>")
        if args.command == "deploy":
            return deploy(compose, args.location, run_tests=not args.no_test)
        if args.command == "rollback":
            return rollback(compose, args.location, args.to)
        if args.command == "retire":
            return retire(compose, args.location)
        return list_releases(compose, args.location)
    except (DeployError, releases.ReleaseError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
