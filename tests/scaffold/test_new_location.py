"""`make new-location` and `make remove-location` end to end, in a copy of the repo.

The copy holds this repository's git-tracked files; the commands run against it
with --root, so this checkout is never changed. The checks use the real tools:
`make lock LOCATION=...` (uv), `docker compose config`, and the location's own
environment, synced from its own lock, loading the definitions, running the
location's own tests and type-checking it. (tests/e2e/test_e2e_99_new_location.py
brings such a location up in the running stack.)
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from template_tools import generate, locks
from template_tools.locations import ROOT, location_names, read_locations
from template_tools.scaffolding import UV, copy_repo, lock, new_location, remove_location, snapshot, sync

NAME, PACKAGE, TEAM = "billing_reports", "billing-reports", "billing"
FOLDER = f"code_locations/{NAME}"
#: The files outside the new folder that the command changes: the one list of locations, and the files
#: `make generate` derives from it that name each location. No lock outside the new folder changes.
EDITED = (
    "workspace.yaml",
    "deploy/workspace/workspace.yaml",
    "docker-compose.yml",
    "deploy/kubernetes/values.yaml",
    "deploy/kubernetes/manifests/network-policies.yaml",
    "deploy/kubernetes/manifests/storage.yaml",
    "deploy/kubernetes/manifests/workspace-config.yaml",
    ".github/CODEOWNERS",
)
#: The file outside the new folder that the command creates: the location's own pipeline.
WORKFLOW = f".github/workflows/location-{NAME}.yml"


@dataclass(frozen=True)
class Scaffold:
    """The copy of the repo after the command ran, and what the edited files held before."""

    root: Path
    originals: dict[str, str]
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Scaffold:
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    before = snapshot(root)
    result = new_location(root, NAME, "--team", TEAM)
    changed = {path for path, content in snapshot(root).items() if before.get(path) != content}
    assert changed - {p for p in changed if p.startswith(f"{FOLDER}/")} <= {*EDITED, WORKFLOW}, changed
    return Scaffold(root, {path: before[path].decode() for path in EDITED}, result)


def test_the_command_creates_a_complete_location_and_prints_the_next_steps(scaffold: Scaffold) -> None:
    assert scaffold.result.returncode == 0, scaffold.result.stderr
    location = scaffold.root / FOLDER
    files = {str(p.relative_to(location)) for p in location.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        f"src/{NAME}/__init__.py",
        f"src/{NAME}/py.typed",
        f"src/{NAME}/definitions.py",
        f"src/{NAME}/assets.py",
        f"src/{NAME}/jobs.py",
        f"src/{NAME}/schedules.py",
        "tests/conftest.py",
        f"tests/test_{NAME}_definitions.py",
        f"tests/test_{NAME}_assets.py",
    }
    assert not [name for name in files if "{{" in (location / name).read_text(encoding="utf-8")]
    project = tomllib.loads((location / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == PACKAGE
    assert {"dagster", "instance-kit", "dagster-docker", "platform-kit"} <= set(project["project"]["dependencies"])
    assert project["tool"]["dagster"] == {"module_name": f"{NAME}.definitions", "code_location_name": NAME}
    assert project["tool"]["dg"]["project"]["code_location_target_module"] == f"{NAME}.definitions"
    # A project of its own: the platform's libraries from this repository, the platform's pins.
    assert project["tool"]["uv"]["sources"]["platform-kit"] == {"path": "../../libs/platform_kit", "editable": True}
    assert project["tool"]["uv"]["constraint-dependencies"] == locks.pins((ROOT / "pyproject.toml").read_text())
    assert f"its pipeline (tests, builds and deploys only this location):\n  + {WORKFLOW}\n" in scaffold.result.stdout
    for step in (f"make test-location LOCATION={NAME}", f"make deploy LOCATION={NAME}", "no other team"):
        assert step in scaffold.result.stdout


def test_it_edits_only_the_one_list_and_generates_the_rest(
    scaffold: Scaffold, capsys: pytest.CaptureFixture[str]
) -> None:
    """The diff shows no hand-edited copy: what the command wrote is what `make generate` writes."""
    assert generate.main(["--root", str(scaffold.root), "--check"]) == 0, capsys.readouterr().err
    assert read_locations(scaffold.root)[-1].team == TEAM


def test_it_gets_its_own_pipeline_that_runs_on_its_folder_and_deploys_with_its_team_s_token(
    scaffold: Scaffold,
) -> None:
    workflow = yaml.safe_load((scaffold.root / WORKFLOW).read_text(encoding="utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    for event in ("push", "pull_request"):
        paths = triggers[event]["paths"]
        assert f"{FOLDER}/**" in paths and "uv.lock" in paths
        assert not [path for path in paths if path.startswith("code_locations/") and path != f"{FOLDER}/**"]
    jobs = workflow["jobs"]
    assert f"make test-location LOCATION={NAME}" in [step.get("run") for step in jobs["test"]["steps"]]
    assert f"--build-arg LOCATION={NAME}" in jobs["build"]["steps"][-1]["run"]
    deploy = jobs["deploy"]["steps"][-1]
    assert deploy["run"] == f"make deploy LOCATION={NAME} TEST=0"
    assert deploy["env"] == {"DAGSTER_DEPLOY_TOKEN": "${{ secrets.DAGSTER_DEPLOY_TOKEN_BILLING }}"}
    assert "github.ref == 'refs/heads/main'" in jobs["deploy"]["if"]


def test_every_edit_only_adds_lines(scaffold: Scaffold) -> None:
    """Comments, order and formatting of the edited files stay as they were."""
    for path, before in scaffold.originals.items():
        after = (scaffold.root / path).read_text(encoding="utf-8")
        matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
        assert {tag for tag, *_ in matcher.get_opcodes()} == {"equal", "insert"}, path


def test_the_workspace_lists_it_after_the_others_and_the_platform_s_uv_workspace_leaves_it_out(
    scaffold: Scaffold,
) -> None:
    assert location_names(scaffold.root) == [*location_names(ROOT), NAME]
    workspace = tomllib.loads((scaffold.root / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    assert "code_locations/*" in workspace["exclude"]
    assert not [member for member in workspace["members"] if member.startswith("code_locations")]


@pytest.fixture(scope="module")
def locked(scaffold: Scaffold, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """`make lock LOCATION=billing_reports` in the copy (what `make new-location` runs next); every lock before it."""
    assert UV.exists(), f"{UV} is missing: run `make venv` first"
    before = {str(p.relative_to(scaffold.root)): p.read_bytes() for p in scaffold.root.glob("**/uv.lock")}
    result = lock(scaffold.root, tmp_path_factory.mktemp("scratch") / "venv", NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    return before


def test_its_own_lock_holds_the_platform_s_versions_and_no_other_lock_changes(
    scaffold: Scaffold, locked: dict[str, bytes]
) -> None:
    own = f"{FOLDER}/uv.lock"
    now = {str(p.relative_to(scaffold.root)): p.read_bytes() for p in scaffold.root.glob("**/uv.lock")}

    assert set(now) == {*locked, own}
    assert {path: content for path, content in now.items() if path != own} == locked  # byte for byte
    platform = locks.locked_versions((scaffold.root / "uv.lock").read_text(), path="uv.lock")
    ours = locks.locked_versions((scaffold.root / own).read_text(), path=own)
    assert ours[PACKAGE] == {"0.1.0"}
    # A new location starts from the versions the platform is tested with: every package it shares.
    assert {name: ours[name] for name in ours if name in platform} == {
        name: platform[name] for name in ours if name in platform
    }
    assert ours["dagster"] == platform["dagster"] and ours["sqlalchemy"] == platform["sqlalchemy"]
    assert locks.problems(scaffold.root, UV) == []


@pytest.fixture(scope="module")
def environment(scaffold: Scaffold, locked: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The new location's own environment, synced from its own lock (`make venv`); its bin folder."""
    return sync(scaffold.root, NAME, tmp_path_factory.mktemp("environment") / "venv")


@pytest.fixture(scope="module")
def compose_config(scaffold: Scaffold, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker compose config` of the copy, with a minimal env file and a per-location cron override."""
    if shutil.which("docker") is None:
        pytest.fail("checking docker-compose.yml needs the docker CLI, which is not installed")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.fail("checking docker-compose.yml needs Docker Compose v2 (`docker compose`), which is not there")
    workdir = tmp_path_factory.mktemp("compose")
    env_file = workdir / "env"
    env_file.write_text(f"{NAME.upper()}_SCHEDULE_CRON=15 4 * * *\n")  # nothing else is required
    # Only what the docker CLI needs: no SOURCE_API_URL etc. from the calling shell.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or k.startswith("DOCKER_")}
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(scaffold.root),
            "--project-name",
            "scaffold",
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.mark.docker
def test_compose_runs_the_location_as_its_own_code_server(compose_config: dict[str, Any], scaffold: Scaffold) -> None:
    services = compose_config["services"]
    service, pattern = services[NAME], services["modular_assets"]
    image = f"scaffold-{NAME}:local"

    assert service["image"] == image
    assert service["build"]["target"] == "code_location"
    assert service["build"]["args"] == {**pattern["build"]["args"], "LOCATION": NAME}
    assert service["healthcheck"] == pattern["healthcheck"]
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "ports" not in service
    environment = service["environment"]
    # Runs are launched in the location's own image (at its live release: the entry point, the env file).
    assert environment["DAGSTER_LOCATION_IMAGE"] == image
    written = yaml.safe_load((scaffold.root / "docker-compose.yml").read_text())["services"][NAME]
    assert written["env_file"] == [{"path": f"./releases/${{COMPOSE_PROJECT_NAME}}/{NAME}.env", "required": False}]
    assert environment["DAGSTER_CONTAINER_CONTEXT"] == pattern["environment"]["DAGSTER_CONTAINER_CONTEXT"]
    assert environment["DAGSTER_PG_HOST"] == "postgres"
    assert environment["SOURCE_API_URL"] == "http://sample_api:8080"
    assert environment["EXPORTS_DIR"] == "/opt/dagster/exports"
    assert (environment["SCHEDULE_CRON"], pattern["environment"]["SCHEDULE_CRON"]) == ("15 4 * * *", "0 6 * * *")
    assert environment["SCHEDULE_TIMEZONE"] == "UTC"
    assert service["depends_on"] == pattern["depends_on"]  # like the existing locations: after Postgres is healthy
    assert service["volumes"] == pattern["volumes"]  # the instance config, read-only
    # Its own network, which no other location joins; the shared services join it at run time,
    # so that their configs stay as they were (location_networks).
    assert set(service["networks"]) == {NAME} and NAME in compose_config["networks"]
    for hub in ("postgres", "sample_api", "webserver", "daemon", "metrics"):
        assert NAME not in services[hub]["networks"], hub
    assert NAME not in services["modular_assets"]["networks"]
    # Its own IO volume, which the storage janitor sweeps.
    assert NAME in compose_config["volumes"]
    janitor = services["storage_janitor"]["volumes"]
    assert any(v["source"] == NAME and v["target"] == f"/opt/dagster/io/{NAME}" for v in janitor)


def test_dagster_loads_the_module_named_in_its_pyproject(scaffold: Scaffold, environment: Path) -> None:
    module = tomllib.loads((scaffold.root / FOLDER / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    load = (
        "import importlib, json, sys; defs = importlib.import_module(sys.argv[1]).defs; "
        "print(json.dumps({'assets': sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()), "
        "'jobs': sorted(j.name for j in defs.resolve_all_job_defs())}))"
    )
    result = subprocess.run(
        [str(environment / "python"), "-c", load, module], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["assets"] == [f"{NAME}_users", f"{NAME}_users_csv"]
    assert f"{NAME}_job" in loaded["jobs"]


@pytest.mark.slow
def test_the_location_s_own_tests_pass(scaffold: Scaffold, environment: Path) -> None:
    result = subprocess.run(
        [str(environment / "pytest"), "-q", "-p", "no:cacheprovider", "tests"],
        cwd=scaffold.root / FOLDER,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_running_it_again_refuses_and_changes_nothing(scaffold: Scaffold) -> None:
    before = snapshot(scaffold.root)

    again = new_location(scaffold.root, NAME)

    assert again.returncode == 1
    assert f"code location '{NAME}' cannot be created, the name is already used" in again.stderr
    assert f"{FOLDER}/ exists" in again.stderr
    assert f"docker-compose.yml: has a service named {NAME}" in again.stderr
    assert f"workspace.yaml: has a location named {NAME}" in again.stderr
    assert "Nothing was changed" in again.stderr
    assert snapshot(scaffold.root) == before


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("simple_ops", "code_locations/simple_ops/ exists"),
        ("postgres", "docker-compose.yml: has a service named postgres"),
        ("pandas", "uv.lock: has a package named pandas"),
        ("json", "standard-library module"),
        ("Billing-Reports", "snake_case"),
        ("ui", "one of the platform's networks"),
    ],
)
def test_a_name_that_is_taken_or_invalid_is_refused_with_the_reason(scaffold: Scaffold, name: str, reason: str) -> None:
    before = snapshot(scaffold.root)

    refused = new_location(scaffold.root, name)

    assert refused.returncode == 1
    assert reason in refused.stderr
    assert snapshot(scaffold.root) == before


def test_remove_location_is_the_inverse_and_says_what_it_removed(scaffold: Scaffold, tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")  # the scaffold's copy stays for the other tests
    pristine = snapshot(root)
    assert new_location(root, NAME, "--team", TEAM).returncode == 0

    removed = remove_location(root, NAME)

    assert removed.returncode == 0, removed.stderr
    for line in (
        "workspace.yaml: its grpc_server entry",
        f"docker-compose.yml: its service {NAME}",
        f"code_locations/{NAME}/, its lock and environment",
        f"{WORKFLOW}: its pipeline",
        "Kept: its run history",
    ):
        assert line in removed.stdout
    assert snapshot(root) == pristine  # byte for byte what it was before the location was added


def test_removing_an_unknown_location_refuses_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    before = snapshot(root)

    refused = remove_location(root, "nobody_here")

    assert refused.returncode == 1
    assert "workspace.yaml lists no code location named 'nobody_here'" in refused.stderr
    assert "simple_ops" in refused.stderr  # it says which ones exist
    assert snapshot(root) == before


@pytest.mark.slow
def test_the_generated_location_is_lint_and_type_clean(scaffold: Scaffold, environment: Path) -> None:
    """`make lint` stays clean after `make new-location`: ruff (lint, format) and mypy on the new project,
    mypy with the location's own environment (as `make mypy`)."""
    folder = scaffold.root / FOLDER
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MYPYPATH": str(folder / "src")}
    python = str(environment / "python")
    for command in (
        [str(bin_dir / "ruff"), "check", str(folder)],
        [str(bin_dir / "ruff"), "format", "--check", str(folder)],
        [str(bin_dir / "mypy"), "--no-incremental", "--python-executable", python, str(folder)],
    ):
        result = subprocess.run(command, cwd=scaffold.root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(command[:2])}:\n{result.stdout}{result.stderr}"
