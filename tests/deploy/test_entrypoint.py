"""The Dagster images' entry point: NAME_FILE secrets, and a clear stop when the password is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy" / "dagster" / "entrypoint.sh"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_PASSWORD")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "env"], capture_output=True, text=True, env={**clean, **env}, timeout=30
    )


def test_the_password_can_come_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cret-from-file")
    result = _run({"DAGSTER_PG_PASSWORD_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    assert "DAGSTER_PG_PASSWORD=s3cret-from-file" in result.stdout.splitlines()
    assert "DAGSTER_PG_PASSWORD_FILE" not in result.stdout


def test_a_plain_password_is_passed_through() -> None:
    result = _run({"DAGSTER_PG_PASSWORD": "plain"})
    assert result.returncode == 0 and "DAGSTER_PG_PASSWORD=plain" in result.stdout.splitlines()


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    result = _run({"DAGSTER_PG_PASSWORD_FILE": str(tmp_path / "missing")})
    assert result.returncode == 78
    assert "DAGSTER_PG_PASSWORD_FILE" in result.stderr and "is the secret mounted?" in result.stderr


def test_no_password_at_all_says_what_to_set() -> None:
    result = _run({})
    assert result.returncode == 78
    assert "docker compose logs init" in result.stderr and "POSTGRES_PASSWORD in .env" in result.stderr


def _current_image(tmp_path: Path, recorded: str | None) -> tuple[str, str]:
    (tmp_path / "release-id").write_text("a1b2c3d4e5f6\n")
    env = {
        "DAGSTER_PG_PASSWORD": "plain",
        "DAGSTER_LOCATION_IMAGE": "proj-simple_ops:local",
        "DAGSTER_RELEASE_ID_FILE": str(tmp_path / "release-id"),
        **({"DAGSTER_RELEASE": recorded} if recorded else {}),
    }
    result = _run(env)
    assert result.returncode == 0, result.stderr
    [image] = [
        line.split("=", 1)[1] for line in result.stdout.splitlines() if line.startswith("DAGSTER_CURRENT_IMAGE=")
    ]
    return image, result.stderr


def test_a_code_server_of_a_recorded_release_reports_its_immutable_tag(tmp_path: Path) -> None:
    assert _current_image(tmp_path, "a1b2c3d4e5f6") == ("proj-simple_ops:a1b2c3d4e5f6", "")


def test_without_a_record_it_reports_the_locations_tag(tmp_path: Path) -> None:
    assert _current_image(tmp_path, None) == ("proj-simple_ops:local", "")


def test_an_image_built_past_its_record_reports_the_locations_tag_and_says_so(tmp_path: Path) -> None:
    image, warning = _current_image(tmp_path, "000000000000")

    assert image == "proj-simple_ops:local"  # the recorded tag names other code
    assert "(release a1b2c3d4e5f6) is not the recorded release 000000000000" in warning
    assert "make deploy LOCATION=" in warning
