"""Rehearse a Dagster upgrade the way README.md ("Upgrade Dagster") documents it, on a throw-away stack.

    .venv/bin/python -m template_tools.upgrade              # the current pins -> newest release of their minor
    .venv/bin/python -m template_tools.upgrade --to 1.13.29 # (`make upgrade-check TO=1.13.29`)
    .venv/bin/python -m template_tools.upgrade --from 1.13.26 --to 1.13.27   # between two other releases
    .venv/bin/python -m template_tools.upgrade --ref HEAD   # the committed files, not the working tree's

In a copy of the repo's tracked files (the working tree, so uncommitted edits count) it starts the
stack at the current pins (or --from) as compose project ``dagster-upgrade``, runs a job of every
code location, stores a state for schedules and sensors, and records the history. Then it upgrades
as documented: the pins in the copy's pyproject.toml, `make lock`, `make up` (rebuild, `migrate`,
wait until healthy), and checks that the history and the schedules and sensors survived and that
every job still runs. Before any of that, `uv lock --dry-run` tells whether the target resolves at
all. Prints the phases with their seconds and PASS/FAIL per check; exits 1 if a check failed.

The project is always removed again, with its volumes and the images it built (also after an
error or Ctrl-C). The main checkout is never changed: pin the new version there if this passes.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests

from template_tools.locations import ROOT
from template_tools.scaffolding import UV, copy_repo
from template_tools.upgrade_report import History, Instigator, Report, compare
from testkit.stack import Stack, wait_for

#: A Dagster pin of the root pyproject.toml's [tool.uv] constraint-dependencies.
PIN = re.compile(r'"(dagster(?:-[a-z0-9]+)*)==(\d+)\.(\d+)\.(\d+)"')

JOBS_QUERY = """
query ($location: String!) { repositoryOrError(repositorySelector:
    {repositoryLocationName: $location, repositoryName: "__repository__"}) {
  ... on Repository { jobs { name } } } }
"""

DAEMONS_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"

#: Each mutation, and the __typename of its success.
MUTATIONS = {
    ("schedule", "start"): (
        "mutation ($s: ScheduleSelector!) { result: startSchedule(scheduleSelector: $s) { __typename } }",
        "ScheduleStateResult",
    ),
    ("schedule", "stop"): (
        "mutation ($id: String) { result: stopRunningSchedule(id: $id) { __typename } }",
        "ScheduleStateResult",
    ),
    ("sensor", "start"): (
        "mutation ($s: SensorSelector!) { result: startSensor(sensorSelector: $s) { __typename } }",
        "Sensor",
    ),
    ("sensor", "stop"): (
        "mutation ($id: String) { result: stopSensor(id: $id) { __typename } }",
        "StopSensorMutationResult",
    ),
}

#: Services whose logs are searched for warnings.
LOGGED_SERVICES = ("migrate", "webserver", "daemon")
WARNING = re.compile(r"warning|deprecat", re.IGNORECASE)


# --- the pins -------------------------------------------------------------------
def pins(pyproject: str) -> dict[str, str]:
    """The Dagster pins of a pyproject.toml's text: package -> version."""
    return {m[1]: f"{m[2]}.{m[3]}.{m[4]}" for m in PIN.finditer(pyproject)}


def retarget(pyproject: str, version: str) -> str:
    """``pyproject`` with every Dagster pin moved to ``version``: the packages on dagster's major
    (1.x) to it, the libraries on 0.x to the matching 0.x (the same minor offset as now, the same
    patch: 1.13.29 goes with 0.29.29)."""
    major, minor, patch = version.split(".")
    core_minor = int(pins(pyproject)["dagster"].split(".")[1])

    def move(pin: re.Match[str]) -> str:
        moved = version if pin[2] == major else f"{pin[2]}.{int(pin[3]) + int(minor) - core_minor}.{patch}"
        return f'"{pin[1]}=={moved}"'

    return PIN.sub(move, pyproject)


def missing_releases(wanted: dict[str, str]) -> list[str]:
    """The pins of ``wanted`` that PyPI has no release for (those it could not be asked about left out)."""
    missing = []
    for package, version in wanted.items():
        try:
            releases = requests.get(f"https://pypi.org/pypi/{package}/json", timeout=30).json()["releases"]
        except (requests.RequestException, ValueError, KeyError):
            continue
        if version not in releases:
            missing.append(f"{package}=={version}")
    return missing


def newest_release(version: str) -> str:
    """The newest release of dagster on PyPI in ``version``'s minor series (1.13.27 -> 1.13.x)."""
    series = version.rsplit(".", 1)[0]
    releases = requests.get("https://pypi.org/pypi/dagster/json", timeout=30).json()["releases"]
    patches = [int(v.rsplit(".", 1)[1]) for v in releases if re.fullmatch(rf"{re.escape(series)}\.\d+", v)]
    return f"{series}.{max(patches)}"


# --- the stack --------------------------------------------------------------------
@dataclass
class UpgradeStack(Stack):
    """The copy's stack under its own project, env file and image tag; `make` runs against it."""

    user: str = "upgrade"
    image_tag: ClassVar[str] = "upgrade"

    @property
    def env_file(self) -> Path:
        return self.workdir / "upgrade.env"

    def make(self, target: str, timeout: float = 1800) -> str:
        """`make <target>` in the copy, on this project and env file, with the main checkout's uv."""
        compose = f"COMPOSE=docker compose -p {self.project} --env-file {self.env_file}"
        result = subprocess.run(
            ["make", "--no-print-directory", target, compose, f"UV={UV}"],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise AssertionError(
                f"`make {target}` failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr}"
            )
        return result.stdout + result.stderr

    def uv(self, *args: str) -> None:
        result = subprocess.run([str(UV), *args], cwd=self.root, capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise AssertionError(f"`uv {' '.join(args)}` failed:\n{result.stderr.strip()}")

    def wait_until_ready(self) -> None:
        wait_for(self.all_locations_loaded, timeout=120, what="every code location loaded")
        wait_for(self.database_ready, timeout=60, what="GraphQL answering from every storage")

    def server_info(self) -> dict[str, str]:
        """The webserver's /server_info: the versions of dagster, dagster-webserver, dagster-graphql."""
        response = requests.get(f"{self.url}/server_info", auth=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def images(self) -> list[str]:
        """The project's tagged images, e.g. ``dagster-upgrade-dagster:upgrade``."""
        out = self.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={self.project}-*")
        return out.stdout.split()

    def image_ids(self) -> set[str]:
        return set(
            self.docker("images", "--quiet", "--no-trunc", "--filter", f"reference={self.project}-*").stdout.split()
        )

    def remove_images(self, earlier_ids: set[str]) -> None:
        """Remove the project's images, and those of ``earlier_ids`` the rebuild left untagged.

        By tag, then only dangling ids: an image of identical content may also carry another
        project's tag (the build cache is shared), and that tag is not ours to remove."""
        for image in self.images():
            self.docker("image", "rm", image, check=False)
        dangling = set(self.docker("images", "--quiet", "--no-trunc", "--filter", "dangling=true").stdout.split())
        for image_id in earlier_ids & dangling:
            self.docker("image", "rm", image_id, check=False)

    def service_logs(self, service: str) -> list[str]:
        return self.compose("logs", "--no-color", "--no-log-prefix", service, check=False).stdout.splitlines()


# --- steps ----------------------------------------------------------------------------
def first_jobs(stack: UpgradeStack) -> dict[str, str]:
    """Each location's first job by name (`__ASSET_JOB` is Dagster's own), as the e2e suite picks them."""
    jobs = {}
    for location in stack.location_names:
        names = stack.graphql(JOBS_QUERY, {"location": location})["repositoryOrError"]["jobs"]
        jobs[location] = min(job["name"] for job in names if not job["name"].startswith("__"))
    return jobs


def run_jobs(stack: UpgradeStack, jobs: dict[str, str], version: str, report: Report) -> None:
    """Launch every job at once, wait for each and check that it succeeded."""
    launched = {location: stack.launch(job, location) for location, job in jobs.items()}
    for location, run_id in launched.items():
        run = stack.wait_for_run(run_id)
        failure = "" if run["status"] == "SUCCESS" else f": {stack.failure_text(run)[-300:]}"
        report.check(
            f"{version}: {jobs[location]} ({location}) succeeds",
            run["status"] == "SUCCESS",
            f"run {run_id[:8]} {run['status']}{failure}",
        )


def set_state(stack: UpgradeStack, instigator: Instigator, action: str) -> None:
    """Start or stop a schedule/sensor (retried while the webserver still answers 500 after start-up)."""
    mutation, success = MUTATIONS[(instigator.kind, action)]
    selector = {
        "repositoryLocationName": instigator.location,
        "repositoryName": instigator.repository,
        f"{instigator.kind}Name": instigator.name,
    }
    variables = {"s": selector} if action == "start" else {"id": instigator.state_id}

    def attempt() -> str | None:
        try:
            return stack.graphql(mutation, variables)["result"]["__typename"]
        except requests.RequestException:
            return None

    outcome = wait_for(attempt, timeout=30, what=f"{action} {instigator.key}")
    assert outcome == success, f"{action} {instigator.key}: {outcome}"


def store_automation_states(stack: UpgradeStack) -> list[str]:
    """Give schedules and sensors a state of their own in the database: the first schedule and the
    first sensor (by name) are switched off and on again (stored RUNNING), the last ones off (stored
    STOPPED, against their code's default RUNNING, so only the database can remember it)."""
    done = []
    instigators = History.read(stack).instigators.values()
    for kind in ("schedule", "sensor"):
        of_kind = sorted((i for i in instigators if i.kind == kind), key=lambda i: i.key)
        if not of_kind:
            continue
        on, off = of_kind[0], of_kind[-1]
        set_state(stack, on, "stop")
        set_state(stack, on, "start")
        done.append(f"{on.key} ON")
        if off is not on:
            set_state(stack, off, "stop")
            done.append(f"{off.key} OFF")
    return done


def has_sensor_ticks(stack: UpgradeStack) -> bool:
    return any(i.ticks for i in History.read(stack).instigators.values() if i.kind == "sensor")


def check_migration(stack: UpgradeStack, report: Report) -> None:
    """`migrate` ran again, from the new image, and exited 0 (`make up` waits for that too)."""
    container = stack.compose("ps", "--all", "--quiet", "migrate").stdout.strip()
    image, exit_code = stack.docker("inspect", "--format", "{{.Image}} {{.State.ExitCode}}", container).stdout.split()
    built = stack.docker(
        "image", "inspect", "--format", "{{.Id}}", f"{stack.project}-dagster:{stack.image_tag}"
    ).stdout.strip()
    said = [line for line in stack.service_logs("migrate") if line.strip()]
    # From Dagster's "Storage schema state before migration:" on (before it: the instance config).
    first = next((i for i, line in enumerate(said) if "schema state before" in line), 0)
    revisions = [line.split(":", 1)[1].strip() for line in said[first:] if line.strip().startswith("current:")]
    half = len(revisions) // 2
    schema = (
        f"schema {'/'.join(sorted(set(revisions[:half])))} -> {'/'.join(sorted(set(revisions[half:])))}"
        if revisions
        else "no schema revision in its log"
    )
    report.check(
        "migrate ran from the new image and exited 0",
        image == built and exit_code == "0",
        f"exit {exit_code}; {schema}",
    )
    report.notes.append("migrate's output after the upgrade:\n" + "\n".join(f"    {line}" for line in said[first:]))


def daemons_healthy(stack: UpgradeStack) -> list[str] | None:
    """The required daemons, once all report healthy; None until then."""
    statuses = stack.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    required = [s for s in statuses if s["required"]]
    return [s["daemonType"] for s in required] if all(s["healthy"] for s in required) else None


def log_warnings(stack: UpgradeStack) -> dict[str, list[str]]:
    """Distinct log lines with a warning or a deprecation, per service (migrate, webserver, daemon, code servers)."""
    found = {}
    for service in (*LOGGED_SERVICES, *stack.location_names):
        lines = [line.strip() for line in stack.service_logs(service) if WARNING.search(line)]
        found[service] = list(dict.fromkeys(lines))
    return found


def warnings_note(before: dict[str, list[str]], after: dict[str, list[str]], start: str, target: str) -> str:
    """The warnings after the upgrade, those not seen (numbers aside) before it marked `new`."""

    def shape(line: str) -> str:
        return re.sub(r"\d+", "#", line)

    lines = [f"warnings in the logs on {target} ('new': not logged on {start}):"]
    for service, found in after.items():
        seen = {shape(line) for line in before.get(service, [])}
        lines += [f"    {service}: {'    ' if shape(line) in seen else 'new '}{line[:300]}" for line in found]
    return "\n".join(lines) if len(lines) > 1 else f"no warnings in the logs of {', '.join(after)} on {target}"


def export_commit(ref: str, target: Path) -> None:
    """The files of commit ``ref`` (`git archive`) in ``target``: a consistent tree while the working tree is mid-edit."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=True)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")


# --- the rehearsal ------------------------------------------------------------------------
def rehearse(stack: UpgradeStack, args: argparse.Namespace, report: Report, built: set[str]) -> None:
    with report.phase(f"copy the tracked files ({args.ref or 'working tree'})"):
        if args.ref:
            export_commit(args.ref, stack.root)
        else:
            copy_repo(stack.root)
        stack.write_env_file({})
        stack.down()  # leftovers of an aborted rehearsal under the same project
    pyproject = stack.root / "pyproject.toml"
    original = pyproject.read_text()
    start = args.start or pins(original)["dagster"]
    target = args.to or newest_release(pins(original)["dagster"])
    report.title = f"upgrade check: Dagster {start} -> {target} (compose project {stack.project})"

    with report.phase(f"{target} resolves (uv lock --dry-run)"):
        pyproject.write_text(retarget(original, target))
        try:
            stack.uv("lock", "--dry-run")
        except AssertionError:
            missing = missing_releases(pins(pyproject.read_text()))
            if missing:
                report.notes.append(f"not on PyPI: {', '.join(missing)}")
            raise
        finally:
            pyproject.write_text(original)
    if start != pins(original)["dagster"]:
        with report.phase(f"pins -> {start}, make lock"):
            pyproject.write_text(retarget(original, start))
            stack.make("lock")

    with report.phase(f"make up on {start} (build, start, healthy)"):
        stack.make("up")
        stack.wait_until_ready()
    built.update(stack.image_ids())
    jobs = first_jobs(stack)
    with report.phase(f"run {', '.join(jobs.values())} on {start}"):
        run_jobs(stack, jobs, start, report)
    with report.phase("store schedule/sensor states, record the history"):
        report.notes.append("states stored before the upgrade: " + ", ".join(store_automation_states(stack)))
        wait_for(lambda: has_sensor_ticks(stack), timeout=120, interval=3, what="a sensor tick")
        before = History.read(stack)
        warnings_before = log_warnings(stack)
    report.check(
        f"{start}: webserver reports Dagster {start}",
        before.versions.get("dagster_version") == start,
        f"dagster {before.versions.get('dagster_version')}; {len(before.runs)} runs, "
        f"{len(before.materializations)} materializations, {before.ticks()} ticks",
    )

    with report.phase(f"pins -> {target}, make lock"):
        pyproject.write_text(retarget(pyproject.read_text(), target))
        stack.make("lock")
    with report.phase(f"make up on {target} (rebuild, migrate, healthy)"):
        stack.make("up")
        stack.wait_until_ready()
    with report.phase("check the history"):
        compare(before, History.read(stack), target, report)
        check_migration(stack, report)
        daemons = wait_for(lambda: daemons_healthy(stack), timeout=60, interval=2, what="every daemon healthy")
        report.check("every required daemon is healthy", True, ", ".join(daemons))
    with report.phase(f"run {', '.join(jobs.values())} on {target}"):
        run_jobs(stack, jobs, target, report)
    report.notes.append(warnings_note(warnings_before, log_warnings(stack), start, target))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    version = re.compile(r"\d+\.\d+\.\d+")

    def release(text: str) -> str:
        if not version.fullmatch(text):
            raise argparse.ArgumentTypeError(f"not a Dagster release such as 1.13.29: {text!r}")
        return text

    parser.add_argument(
        "--to", type=release, help="the Dagster release to upgrade to (default: newest of the pin's minor)"
    )
    parser.add_argument("--from", dest="start", type=release, help="start at this release instead of the current pins")
    parser.add_argument("--ref", help="rehearse with the files of this commit (e.g. HEAD), not the working tree's")
    parser.add_argument("--project", default="dagster-upgrade", help="compose project name (default dagster-upgrade)")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dagster-upgrade-"))
    stack = UpgradeStack(project=args.project, workdir=workdir, root=workdir / "repo")
    report = Report(title=f"upgrade check (compose project {stack.project})")
    built: set[str] = set()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        rehearse(stack, args, report, built)
    except KeyboardInterrupt:
        report.errors.append("interrupted")
    except AssertionError as exc:  # a command or a wait failed: its message says what happened
        if not report.errors:  # outside a phase
            report.errors.append(str(exc))
    except Exception:
        traceback.print_exc()
        if not report.errors:
            report.errors.append(traceback.format_exc(limit=1).strip())
    finally:
        try:
            with report.phase("tear down (down --volumes, remove the images)"):
                if stack.root.is_dir():
                    stack.down()
                stack.remove_images(built)
        except Exception:
            traceback.print_exc()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report.render())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
