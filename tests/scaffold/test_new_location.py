"""`make new-location` end to end: a third code location scaffolded in a copy of the repo.

The copy holds this repository's git-tracked files; the command runs against it
with --root, so this checkout is never changed. The checks use the real tools:
tomllib, `uv lock`, `docker compose config`, Dagster loading the definitions and
pytest running the location's own tests.
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

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "scripts" / "new_location.py"
NAME, PACKAGE, TEAM = "billing_reports", "billing-reports", "billing"
FOLDER = f"code_locations/{NAME}"
EDITED = (
    "pyproject.toml",
    "deploy/Dockerfile",
    "deploy/dagster/workspace.yaml",
    "deploy/dev/workspace.yaml",
    "docker-compose.yml",
    ".env.example",
)


@dataclass(frozen=True)
class Scaffold:
    """The copy of the repo after the command ran, and what the edited files held before."""

    root: Path
    originals: dict[str, str]
    result: subprocess.CompletedProcess[str]


def new_location(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command as `make new-location` does, against ``root``."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def copy_repo(target: Path) -> Path:
    """Copy the git-tracked files of this checkout (as they are in the working tree) to ``target``."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True, check=True
    ).stdout
    for relative in filter(None, listing.split("\0")):
        source = ROOT / relative
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    """The content of every file under ``root``."""
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def location_env(root: Path) -> dict[str, str]:
    """Environment that imports the new location and the shared libraries from the copy's sources."""
    sources = [root / FOLDER / "src", root / "libs/platform_kit/src", root / "deploy/sample_api/src"]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, sources)), "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Scaffold:
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    originals = {path: (root / path).read_text(encoding="utf-8") for path in EDITED}
    return Scaffold(root, originals, new_location(root, NAME, "--team", TEAM))


def test_the_command_creates_a_complete_location_and_prints_the_next_steps(scaffold: Scaffold) -> None:
    assert scaffold.result.returncode == 0, scaffold.result.stderr
    location = scaffold.root / FOLDER
    files = {str(p.relative_to(location)) for p in location.rglob("*") if p.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        f"src/{NAME}/__init__.py",
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
    for step in ("make lock", "make test", "make up", f"docker compose build {NAME}"):
        assert step in scaffold.result.stdout


def test_every_edit_only_adds_lines(scaffold: Scaffold) -> None:
    """Comments, order and formatting of the edited files stay as they were."""
    for path, before in scaffold.originals.items():
        after = (scaffold.root / path).read_text(encoding="utf-8")
        matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
        assert {tag for tag, *_ in matcher.get_opcodes()} == {"equal", "insert"}, path


def test_the_root_pyproject_makes_it_a_workspace_member_and_dev_dependency(scaffold: Scaffold) -> None:
    pyproject = tomllib.loads((scaffold.root / "pyproject.toml").read_text(encoding="utf-8"))

    assert FOLDER in pyproject["tool"]["uv"]["workspace"]["members"]
    assert PACKAGE in pyproject["dependency-groups"]["dev"]
    assert pyproject["tool"]["uv"]["sources"][PACKAGE] == {"workspace": True}


def test_uv_lock_adds_the_project_with_the_same_dagster_as_the_others(scaffold: Scaffold, tmp_path: Path) -> None:
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        pytest.skip(f"{uv} is missing: run `make venv` first")
    lock_file = scaffold.root / "uv.lock"
    before = sorted((p["name"], p["version"]) for p in tomllib.loads(lock_file.read_text())["package"])
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}

    def lock(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(uv), "lock", *args], cwd=scaffold.root, env=env, capture_output=True, text=True, timeout=120
        )

    locked = lock("--offline")
    if locked.returncode != 0:  # the cache lacks some metadata: ask PyPI
        locked = lock()

    assert locked.returncode == 0, locked.stderr
    packages = tomllib.loads(lock_file.read_text())["package"]
    new = next(p for p in packages if p["name"] == PACKAGE)
    assert new["source"] == {"editable": FOLDER}
    assert {d["name"] for d in new["dependencies"]} >= {"dagster", "instance-kit", "dagster-docker", "platform-kit"}
    after = sorted((p["name"], p["version"]) for p in packages if p is not new)
    dagster = [version for name, version in after if name == "dagster"]
    assert len(dagster) == 1 and dagster == [version for name, version in before if name == "dagster"]
    assert after == before  # nothing else moved


@pytest.fixture(scope="module")
def compose_config(scaffold: Scaffold, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker compose config` of the copy, with a minimal env file and a per-location cron override."""
    if shutil.which("docker") is None:
        pytest.skip("Docker is not installed, so docker-compose.yml is not checked")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode:
        pytest.skip("Docker Compose v2 is not available, so docker-compose.yml is not checked")
    workdir = tmp_path_factory.mktemp("compose")
    (workdir / "htpasswd").touch()
    env_file = workdir / "env"
    env_file.write_text(
        "POSTGRES_PASSWORD=x\nDOCKER_GID=0\n"
        f"GATEWAY_HTPASSWD_FILE={workdir / 'htpasswd'}\n"
        f"{NAME.upper()}_SCHEDULE_CRON=15 4 * * *\n"
    )
    # Only what the docker CLI needs: no SOURCE_API_URL etc. from the calling shell.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or k.startswith("DOCKER_")}
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(scaffold.root), "--project-name", "scaffold",
         "--env-file", str(env_file), "config", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_runs_the_location_as_its_own_code_server(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    service, pattern = services[NAME], services["modular_assets"]
    image = f"scaffold-{NAME}:local"

    assert service["image"] == image
    assert service["build"]["target"] == "code_location"
    assert {k: service["build"]["args"][k] for k in ("PACKAGE", "LOCATION")} == {"PACKAGE": PACKAGE, "LOCATION": NAME}
    assert service["healthcheck"] == pattern["healthcheck"]
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "ports" not in service
    environment = service["environment"]
    assert environment["DAGSTER_CURRENT_IMAGE"] == image  # runs are launched in the location's own image
    assert environment["DAGSTER_CONTAINER_CONTEXT"] == pattern["environment"]["DAGSTER_CONTAINER_CONTEXT"]
    assert environment["DAGSTER_PG_HOST"] == "postgres"
    assert environment["SOURCE_API_URL"] == "http://sample_api:8080"
    assert environment["EXPORTS_DIR"] == "/opt/dagster/exports"
    assert (environment["SCHEDULE_CRON"], pattern["environment"]["SCHEDULE_CRON"]) == ("15 4 * * *", "0 6 * * *")
    assert environment["SCHEDULE_TIMEZONE"] == "UTC"
    assert service["depends_on"] == pattern["depends_on"]  # like the existing locations: after Postgres is healthy
    for dependent in ("webserver", "daemon"):
        assert services[dependent]["depends_on"][NAME]["condition"] == "service_started"


def test_both_workspaces_load_the_location(scaffold: Scaffold) -> None:
    grpc = yaml.safe_load((scaffold.root / "deploy/dagster/workspace.yaml").read_text())["load_from"]
    dev = yaml.safe_load((scaffold.root / "deploy/dev/workspace.yaml").read_text())["load_from"]

    assert grpc[-1] == {"grpc_server": {"location_name": NAME, "host": NAME, "port": 4000}}
    assert dev[-1] == {"python_module": {"module_name": f"{NAME}.definitions", "location_name": NAME}}


def test_the_dockerfile_copies_its_pyproject_before_the_locked_install(scaffold: Scaffold) -> None:
    lines = (scaffold.root / "deploy/Dockerfile").read_text().splitlines()

    copy = lines.index(f"COPY {FOLDER}/pyproject.toml {FOLDER}/")
    assert copy < next(i for i, line in enumerate(lines) if "uv sync" in line)


def test_dagster_loads_the_module_named_in_its_pyproject(scaffold: Scaffold) -> None:
    module = tomllib.loads((scaffold.root / FOLDER / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    load = (
        "import importlib, json, sys; defs = importlib.import_module(sys.argv[1]).defs; "
        "print(json.dumps({'assets': sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()), "
        "'jobs': sorted(j.name for j in defs.resolve_all_job_defs())}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", load, module],
        env=location_env(scaffold.root), capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["assets"] == [f"{NAME}_users", f"{NAME}_users_csv"]
    assert f"{NAME}_job" in loaded["jobs"]


def test_the_location_s_own_tests_pass(scaffold: Scaffold) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=scaffold.root / FOLDER, env=location_env(scaffold.root), capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_running_it_again_refuses_and_changes_nothing(scaffold: Scaffold) -> None:
    before = snapshot(scaffold.root)

    again = new_location(scaffold.root, NAME)

    assert again.returncode == 1
    assert f"code location '{NAME}' cannot be created, the name is already used" in again.stderr
    assert f"{FOLDER}/ exists" in again.stderr
    assert f"docker-compose.yml: has a service named {NAME}" in again.stderr
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
    ],
)
def test_a_name_that_is_taken_or_invalid_is_refused_with_the_reason(scaffold: Scaffold, name: str, reason: str) -> None:
    before = snapshot(scaffold.root)

    refused = new_location(scaffold.root, name)

    assert refused.returncode == 1
    assert reason in refused.stderr
    assert snapshot(scaffold.root) == before
