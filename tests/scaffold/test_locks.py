"""Each code location's own lock: a team moves its own libraries alone, and nobody moves the platform's.

Against a copy of the repo (this checkout never changes), with the real uv: a location adds
or upgrades a library of its own, and only its lock and what its image installs change;
asking for another Dagster fails to lock; a lock that moved a platform library anyway, a
stale lock and a missing one fail `make verify`, each naming the location and the fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from template_tools import generate, locks
from template_tools.locations import ROOT, location_names
from template_tools.scaffolding import UV, copy_repo, lock

OURS, THEIRS = "simple_ops", "modular_assets"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    assert UV.exists(), f"{UV} is missing: run `make venv` first"
    return copy_repo(tmp_path / "repo")


def all_locks(root: Path) -> dict[str, bytes]:
    """Every uv.lock of the checkout (not of the copies the e2e suite and benchmarks run from)."""
    found = (path.relative_to(root) for path in sorted(root.glob("**/uv.lock")))
    skipped = ("test-artifacts", ".venv", ".tools")
    return {str(path): (root / path).read_bytes() for path in found if not set(path.parts) & set(skipped)}


def require(root: Path, location: str, requirement: str) -> None:
    """Add ``requirement`` to the location's own dependencies, as its team would."""
    pyproject = root / "code_locations" / location / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("dependencies = [\n", f'dependencies = [\n    "{requirement}",\n', 1))


def installed_by_image(root: Path, location: str) -> str:
    """What the location's image installs: deploy/Dockerfile's export of its lock (the venv layer's input)."""
    export = ["export", "--frozen", "--offline", "--no-dev", "--no-header", "--no-annotate"]
    project = ["--project", f"code_locations/{location}", "--no-emit-project", "--no-emit-local"]
    result = subprocess.run(
        [str(UV), *export, *project],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def versions(root: Path, location: str) -> dict[str, set[str]]:
    path = f"code_locations/{location}/uv.lock"
    return locks.locked_versions((root / path).read_text(), path=path)


def test_every_location_has_a_lock_of_its_own_that_agrees_with_the_platform_s() -> None:
    assert locks.problems(ROOT, UV) == []
    assert {path for path in all_locks(ROOT) if path != "uv.lock"} == {
        f"code_locations/{name}/uv.lock" for name in location_names()
    }


def test_a_location_adds_a_library_and_only_its_own_lock_and_image_change(repo: Path, tmp_path: Path) -> None:
    before = all_locks(repo)
    theirs = installed_by_image(repo, THEIRS)
    require(repo, OURS, "prometheus-client")

    locked = lock(repo, tmp_path / "venv", OURS)

    assert locked.returncode == 0, locked.stdout + locked.stderr
    after = all_locks(repo)
    assert [path for path in after if after[path] != before[path]] == [f"code_locations/{OURS}/uv.lock"]
    assert "prometheus-client" in versions(repo, OURS)
    assert "prometheus-client==" in installed_by_image(repo, OURS)
    assert installed_by_image(repo, THEIRS) == theirs  # the other image's venv layer is the cached one
    assert locks.problems(repo, UV) == []


def test_a_location_upgrades_a_library_of_its_own_alone(repo: Path, tmp_path: Path) -> None:
    before = all_locks(repo)
    platform = locks.locked_versions((repo / "uv.lock").read_text(), path="uv.lock")
    assert platform["pandas"] == {"3.1.1"}
    require(repo, OURS, "pandas==3.1.2")

    locked = lock(repo, tmp_path / "venv", OURS)

    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert versions(repo, OURS)["pandas"] == {"3.1.2"}
    assert versions(repo, THEIRS)["pandas"] == platform["pandas"]
    after = all_locks(repo)
    assert [path for path in after if after[path] != before[path]] == [f"code_locations/{OURS}/uv.lock"]
    assert locks.problems(repo, UV) == []  # pandas is the location's own choice


def test_a_location_asking_for_another_dagster_cannot_lock(repo: Path, tmp_path: Path) -> None:
    before = all_locks(repo)
    require(repo, OURS, "dagster==1.13.26")

    locked = lock(repo, tmp_path / "venv", OURS)

    assert locked.returncode == 1
    assert "dagster==1.13.26 and dagster==1.13.27" in locked.stderr  # uv: the request against the platform's pin
    assert f"lock: could not lock {OURS}" in locked.stderr
    assert all_locks(repo) == before


def test_a_lock_that_moved_a_platform_library_fails_verify_until_make_lock(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A team edits the generated pins and locks with uv itself: `make verify` names the location,
    the package, both versions and the fix; `make lock LOCATION=...` puts the platform's pins back."""
    pyproject = repo / "code_locations" / OURS / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"sqlalchemy==2.1.9"', '"sqlalchemy==2.0.44"'))
    for network in ("--offline", "--no-offline"):
        relocked = subprocess.run(
            [str(UV), "lock", network, "--project", f"code_locations/{OURS}"], cwd=repo, capture_output=True, text=True
        )
        if relocked.returncode == 0:
            break
    assert relocked.returncode == 0, relocked.stderr
    assert versions(repo, OURS)["sqlalchemy"] == {"2.0.44"}

    assert generate.main(["--root", str(repo), "--check"]) == 1
    assert f"verify: code_locations/{OURS}/pyproject.toml is not what `make generate` writes" in capsys.readouterr().err
    [problem] = locks.problems(repo, UV)
    assert problem.startswith(
        f"code_locations/{OURS}/uv.lock resolves sqlalchemy 2.0.44, the platform (the root uv.lock) 2.1.9. "
    )
    assert f"run `make lock LOCATION={OURS}`" in problem
    assert locks.main(["--root", str(repo), "--uv", str(UV), "check"]) == 1

    assert lock(repo, tmp_path / "venv", OURS).returncode == 0

    assert versions(repo, OURS)["sqlalchemy"] == {"2.1.9"}
    assert generate.main(["--root", str(repo), "--check"]) == 0
    assert locks.problems(repo, UV) == []


def test_a_dependency_added_without_make_lock_fails_verify(repo: Path) -> None:
    require(repo, OURS, "prometheus-client")

    assert locks.problems(repo, UV) == [
        f"code_locations/{OURS}/uv.lock is not current with its pyproject.toml (or a platform library's): "
        f"run `make lock LOCATION={OURS}`"
    ]


def test_a_location_without_its_lock_fails_verify(repo: Path) -> None:
    (repo / "code_locations" / THEIRS / "uv.lock").unlink()

    assert locks.problems(repo, UV) == [
        f"code_locations/{THEIRS}/uv.lock does not exist: every location installs from its own lock; "
        f"run `make lock LOCATION={THEIRS}`"
    ]


def test_make_refuses_a_location_that_does_not_exist() -> None:
    result = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(ROOT), "lint", "LOCATION=nobody_here"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "LOCATION=nobody_here is not a code location; code_locations/ holds:" in result.stderr
    assert all(name in result.stderr for name in location_names())
