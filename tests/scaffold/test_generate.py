"""`make generate` and `make verify` (template_tools.generate) on a copy of the repo.

Every generated file, edited by hand, fails the check until `make generate` rewrites it;
the settings table and docker-compose.yml are held together the same way, and so are the
platform's pins and each location's pyproject.toml, and the list and the locations' pipelines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from template_tools import generate
from template_tools.locations import ROOT
from template_tools.regions import BEGIN
from template_tools.scaffolding import copy_repo
from template_tools.settings import COMPOSE, SETTINGS

GENERATED = sorted(generate.outputs(ROOT))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


def hand_edit(path: Path) -> None:
    """Change one generated line of ``path``: the first inside a region, else the first that is not a comment."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i + 1 for i, line in enumerate(lines) if BEGIN.match(line.rstrip("\n"))]
    index = starts[0] if starts else next(i for i, line in enumerate(lines) if line.strip() and line[0] != "#")
    lines[index] = lines[index].rstrip("\n") + "  # edited by hand\n"
    path.write_text("".join(lines), encoding="utf-8")


def test_the_committed_files_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_every_output_is_a_file_of_the_repo() -> None:
    assert set(GENERATED) >= {
        ".env.example",
        ".github/CODEOWNERS",
        "docker-compose.yml",
        "deploy/kubernetes/values.yaml",
        "deploy/kubernetes/manifests/access-config.yaml",
        "deploy/kubernetes/manifests/gateway.yaml",
        "deploy/kubernetes/manifests/workspace-config.yaml",
        "deploy/kubernetes/manifests/gateway-config.yaml",
        "deploy/kubernetes/manifests/network-policies.yaml",
        "deploy/kubernetes/manifests/storage.yaml",
        "deploy/workspace/workspace.yaml",
        "code_locations/simple_ops/pyproject.toml",
        "code_locations/modular_assets/pyproject.toml",
        ".github/workflows/location-simple_ops.yml",
        ".github/workflows/location-modular_assets.yml",
    }


def test_the_pipeline_of_a_location_no_longer_listed_fails_verify_and_generate_deletes_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = repo / ".github/workflows/location-gone_team.yml"
    orphan.write_text(
        (repo / ".github/workflows/location-simple_ops.yml").read_text().replace("simple_ops", "gone_team")
    )

    assert generate.main(["--root", str(repo), "--check"]) == 1
    assert (
        "location-gone_team.yml is the pipeline of a location workspace.yaml no longer lists" in capsys.readouterr().err
    )
    assert generate.main(["--root", str(repo)]) == 0
    assert not orphan.exists() and (repo / ".github/workflows/ci.yml").is_file()
    assert generate.main(["--root", str(repo), "--check"]) == 0


@pytest.mark.parametrize("path", GENERATED)
def test_a_hand_edit_fails_verify_until_generate_runs(
    repo: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hand_edit(repo / path)

    assert generate.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"verify: {path} is not what `make generate` writes" in err
    assert "edited by hand" in err and "run `make generate`" in err

    assert generate.main(["--root", str(repo)]) == 0
    assert generate.main(["--root", str(repo), "--check"]) == 0
    assert (repo / path).read_text(encoding="utf-8") == (ROOT / path).read_text(encoding="utf-8")


def test_a_compose_variable_missing_from_the_settings_table_is_named(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = repo / COMPOSE
    compose.write_text(
        compose.read_text().replace(
            'JANITOR_INTERVAL_SECONDS: "3600"', "JANITOR_INTERVAL_SECONDS: ${JANITOR_EVERY:-3600}"
        )
    )

    assert generate.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"docker-compose.yml reads JANITOR_EVERY, which {SETTINGS} does not list" in err


def test_a_setting_compose_does_not_read_is_named(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = repo / SETTINGS
    table.write_text(table.read_text() + "      - name: NOBODY_READS_ME\n        summary: stale\n")

    assert generate.main(["--root", str(repo)]) == 1
    assert f"{SETTINGS} lists NOBODY_READS_ME, which docker-compose.yml does not read" in capsys.readouterr().err


def test_two_defaults_for_one_variable_are_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = repo / COMPOSE
    compose.write_text(compose.read_text().replace("${MIGRATE_MEM_LIMIT:-512m}", "${MIGRATE_MEM_LIMIT:-1g}", 1))
    compose.write_text(compose.read_text() + "# ${MIGRATE_MEM_LIMIT:-512m}\n")

    assert generate.main(["--root", str(repo)]) == 1
    assert "gives MIGRATE_MEM_LIMIT more than one default (1g, 512m)" in capsys.readouterr().err


def test_a_settings_entry_changes_both_env_example_and_the_compose_header(repo: Path) -> None:
    table = repo / SETTINGS
    table.write_text(table.read_text().replace("summary: Dagster's database", "summary: the Dagster database"))

    assert generate.main(["--root", str(repo)]) == 0
    assert "the Dagster database" in (repo / COMPOSE).read_text()
    assert "POSTGRES_DB=dagster\n" in (repo / ".env.example").read_text()


def test_a_pin_of_the_platform_reaches_every_location_s_pyproject(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo / "pyproject.toml"
    root.write_text(root.read_text().replace('"sqlalchemy==2.1.9"', '"sqlalchemy==2.1.10"'))

    assert generate.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    for name in ("simple_ops", "modular_assets"):
        assert f"verify: code_locations/{name}/pyproject.toml is not what `make generate` writes" in err
    assert '+    "sqlalchemy==2.1.10",' in err

    assert generate.main(["--root", str(repo)]) == 0
    for name in ("simple_ops", "modular_assets"):
        assert '"sqlalchemy==2.1.10",' in (repo / f"code_locations/{name}/pyproject.toml").read_text()


def test_a_location_s_pyproject_without_its_pins_region_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = repo / "code_locations/simple_ops/pyproject.toml"
    project.write_text(project.read_text().replace("# >>> generated: platform-pins", "# the pins"))

    assert generate.main(["--root", str(repo), "--check"]) == 1
    err = capsys.readouterr().err
    assert "code_locations/simple_ops/pyproject.toml: expected one `# >>> generated: platform-pins` line" in err
    assert "restore it from git" in err
