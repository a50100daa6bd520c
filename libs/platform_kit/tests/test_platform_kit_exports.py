"""Atomic exports: complete files or the old file, never a half file or a stray temp file."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from platform_kit.exports import CsvExportResource, write_csv_atomic


@pytest.fixture
def exports(tmp_path: Path) -> CsvExportResource:
    return CsvExportResource(base_dir=str(tmp_path / "exports"), subdir="team_a")


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2], "name": ["Zoë", "O'Connor, Jr."]})


class ExplodingFrame(pd.DataFrame):
    """A frame whose CSV writer dies after writing part of the file, like a full disk."""

    def to_csv(self, path_or_buf: Any = None, **kwargs: Any) -> None:
        path_or_buf.write("user_id,name\n1,partial")
        raise OSError("No space left on device")


def test_write_creates_the_file_under_base_dir_and_subdir(
    exports: CsvExportResource, frame: pd.DataFrame, tmp_path: Path
) -> None:
    exported = exports.write(frame, "users.csv")

    assert exported.path == tmp_path / "exports" / "team_a" / "users.csv"
    assert exported.row_count == 2
    assert exported.size_bytes == exported.path.stat().st_size
    pd.testing.assert_frame_equal(pd.read_csv(exported.path), frame, check_dtype=False)
    assert exported.path.read_text(encoding="utf-8") == 'user_id,name\n1,Zoë\n2,"O\'Connor, Jr."\n'


def test_written_files_are_world_readable_and_no_temp_file_is_left(
    exports: CsvExportResource, frame: pd.DataFrame
) -> None:
    csv = exports.write(frame, "users.csv").path
    summary = exports.write_json({"rows": 2}, "summary.json")

    assert stat.S_IMODE(csv.stat().st_mode) == 0o644
    assert stat.S_IMODE(summary.stat().st_mode) == 0o644
    assert sorted(p.name for p in exports.directory.iterdir()) == ["summary.json", "users.csv"]


def test_a_new_write_replaces_the_old_file(exports: CsvExportResource, frame: pd.DataFrame) -> None:
    exports.write(frame, "users.csv")

    exported = exports.write(frame.head(1), "users.csv")

    assert exported.row_count == 1
    assert len(pd.read_csv(exported.path)) == 1


def test_a_write_failing_midway_leaves_the_old_file_intact(exports: CsvExportResource, frame: pd.DataFrame) -> None:
    old = exports.write(frame, "users.csv").path.read_bytes()

    with pytest.raises(OSError, match="No space left on device"):
        exports.write(ExplodingFrame(frame), "users.csv")

    assert (exports.directory / "users.csv").read_bytes() == old
    assert [p.name for p in exports.directory.iterdir()] == ["users.csv"]


def test_a_failed_first_write_leaves_nothing_behind(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(OSError, match="No space left on device"):
        write_csv_atomic(ExplodingFrame(frame), tmp_path / "users.csv")

    assert list(tmp_path.iterdir()) == []


def test_json_is_written_as_indented_utf8(exports: CsvExportResource) -> None:
    data = {"record_count": 2, "columns": ["user_id", "name"], "city": "Kraków"}

    path = exports.write_json(data, "summary.json")

    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert '"city": "Kraków"' in text
    assert text.startswith('{\n  "record_count": 2,') and text.endswith("}\n")


def test_unencodable_json_leaves_the_old_file_intact(exports: CsvExportResource) -> None:
    old = exports.write_json({"record_count": 2}, "summary.json").read_bytes()

    with pytest.raises(TypeError, match="not JSON serializable"):
        exports.write_json({"record_count": 3, "when": object()}, "summary.json")

    assert (exports.directory / "summary.json").read_bytes() == old
    assert [p.name for p in exports.directory.iterdir()] == ["summary.json"]


@pytest.mark.parametrize("filename", ["", ".", "..", "../users.csv", "sub/users.csv", "/tmp/users.csv"])
def test_only_plain_file_names_are_accepted(exports: CsvExportResource, frame: pd.DataFrame, filename: str) -> None:
    with pytest.raises(ValueError, match="filename must be a plain file name"):
        exports.write(frame, filename)
    with pytest.raises(ValueError, match="filename must be a plain file name"):
        exports.write_json({}, filename)

    assert not (exports.directory.parent).exists()


def test_exported_file_metadata_describes_the_file_and_the_frame(
    exports: CsvExportResource, frame: pd.DataFrame
) -> None:
    exported = exports.write(frame, "users.csv")

    metadata = exported.metadata(frame)

    assert metadata["export_path"] == dg.MetadataValue.path(str(exported.path))
    assert metadata["size_bytes"] == exported.size_bytes
    assert metadata["dagster/row_count"] == 2
    assert [c.name for c in metadata["dagster/column_schema"].columns] == ["user_id", "name"]
    assert "| Zoë |" in metadata["preview"].value


def test_in_an_asset_the_base_dir_comes_from_the_environment_and_the_path_survives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, frame: pd.DataFrame
) -> None:
    monkeypatch.setenv("EXPORTS_DIR", str(tmp_path))

    @dg.asset
    def users(exports: CsvExportResource) -> dg.Output[str]:
        exported = exports.write(frame, "users.csv")
        return dg.Output(str(exported.path), metadata=exported.metadata(frame))

    result = dg.materialize(
        [users],
        resources={"exports": CsvExportResource(base_dir=dg.EnvVar("EXPORTS_DIR"), subdir="loc")},
    )

    csv = tmp_path / "loc" / "users.csv"
    assert result.output_for_node("users") == str(csv)
    [materialization] = [e.materialization for e in result.get_asset_materialization_events()]
    # The default IO manager adds its own "path" (the pickled value); ours must not be lost.
    assert materialization.metadata["export_path"] == dg.MetadataValue.path(str(csv))
