"""Atomic CSV (and JSON) exports under ``EXPORTS_DIR/<location>/``.

A file is first written to a hidden temporary file in the destination folder,
flushed to disk, then renamed over the old file: readers see either the old
file or the new one, never half a file, and a failed write leaves the old file
as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import dagster as dg
from pydantic import Field

from platform_kit.metadata import frame_metadata

if TYPE_CHECKING:  # pandas is imported where it runs: see platform_kit.frames.DataFrame
    import pandas as pd


@dataclass(frozen=True)
class ExportedFile:
    """What was written: where, how many data rows, how many bytes."""

    path: Path
    row_count: int
    size_bytes: int

    def metadata(self, frame: pd.DataFrame) -> dict[str, dg.RawMetadataValue]:
        """Materialization metadata: path, size, row count, schema and a preview.

        The key is ``export_path``, not ``path``: Dagster's default IO manager
        writes its own ``path`` (where it pickled the asset's value) over ours.
        """
        return {
            "export_path": dg.MetadataValue.path(str(self.path)),
            "size_bytes": self.size_bytes,
            **frame_metadata(frame),
        }


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> ExportedFile:
    """Write ``frame`` (without its index) to ``path`` atomically; return what was written."""
    _write_atomic(path, lambda handle: frame.to_csv(handle, index=False))
    return ExportedFile(path=path, row_count=len(frame), size_bytes=path.stat().st_size)


def write_json_atomic(data: Any, path: Path) -> Path:
    """Write ``data`` as indented UTF-8 JSON to ``path`` atomically; return the path.

    A value that cannot be encoded as JSON raises ``TypeError`` and leaves any
    existing file at ``path`` untouched.
    """

    def dump(handle: TextIO) -> None:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")

    _write_atomic(path, dump)
    return path


def _write_atomic(path: Path, write: Callable[[TextIO], None]) -> None:
    """Call ``write`` on a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename: fsync the folder that holds the renamed file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CsvExportResource(dg.ConfigurableResource):
    """Where a code location writes its exports: ``<base_dir>/<subdir>/<name>.csv`` (or ``.json``).

    Configure ``base_dir`` with ``dg.EnvVar("EXPORTS_DIR")`` and ``subdir`` with the
    location's name, so teams never overwrite each other's files.
    """

    base_dir: str = Field(description="Root folder of all exports (env var EXPORTS_DIR).")
    subdir: str = Field(description="This code location's folder under base_dir.")

    @property
    def directory(self) -> Path:
        """The folder this location writes to."""
        return Path(self.base_dir) / self.subdir

    def write(self, frame: pd.DataFrame, filename: str) -> ExportedFile:
        """Write ``frame`` atomically to ``<directory>/<filename>``."""
        return write_csv_atomic(frame, self._target(filename))

    def write_json(self, data: Any, filename: str) -> Path:
        """Write ``data`` as JSON atomically to ``<directory>/<filename>``; return its path."""
        return write_json_atomic(data, self._target(filename))

    def _target(self, filename: str) -> Path:
        """``<directory>/<filename>``, for a plain file name only (no folders, no ``..``)."""
        if filename in ("", ".", "..") or Path(filename).name != filename:
            raise ValueError(f"filename must be a plain file name, got {filename!r}")
        return self.directory / filename
