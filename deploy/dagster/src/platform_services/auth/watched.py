"""A file that a running service re-reads when it changes (written atomically by others)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
Signature = tuple[int, int, int] | None


def signature(path: Path) -> Signature:
    """What changes when a file is replaced or edited: its inode, size and modification time; None if absent."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class WatchedFile(Generic[T]):
    """The parsed content of ``path``, parsed again when the file changes (one ``stat`` per read).

    A missing file is ``missing``. A file that fails to parse is reported once to ``on_error``,
    and the last good content stays in force.
    """

    def __init__(self, path: Path, parse: Callable[[str], T], missing: T, on_error: Callable[[str], None]) -> None:
        self.path = path
        self._parse = parse
        self._missing = missing
        self._on_error = on_error
        self._lock = threading.Lock()
        self._seen: Signature | bool = False  # False: never read
        self._value = missing
        self.generation = 0  # bumped on every change of the value, so that caches can follow

    def get(self) -> T:
        current = signature(self.path)
        if current != self._seen:
            with self._lock:
                if current != self._seen:
                    self._load(current)
        return self._value

    def _load(self, current: Signature) -> None:
        self._seen = current
        if current is None:
            self._value, self.generation = self._missing, self.generation + 1
            return
        try:
            value = self._parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._seen = None
            self._value, self.generation = self._missing, self.generation + 1
        except (OSError, UnicodeDecodeError, ValueError) as error:
            self._on_error(f"{self.path}: {error}; the previous version stays in force")
        else:
            self._value, self.generation = value, self.generation + 1
