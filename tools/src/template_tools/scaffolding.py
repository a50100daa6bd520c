"""Run `make new-location` / `make remove-location` against a copy of this repo (for tests).

A copy holds this checkout's git-tracked files as they are in the working tree,
so the commands (and `uv lock`, and even `docker compose`) can run against it
without ever changing this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from template_tools.locations import ROOT

UV = ROOT / ".tools" / "bin" / "uv"


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
    """The content of every file under ``root``, by relative path."""
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _tool(module: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args, "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def new_location(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make new-location` (without its `uv lock`) against ``root``."""
    return _tool("template_tools.new_location", root, *args)


def remove_location(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make remove-location` (without its `uv lock`) against ``root``."""
    return _tool("template_tools.remove_location", root, *args)


def lock(root: Path, environment: Path) -> subprocess.CompletedProcess[str]:
    """`uv lock` in ``root`` (from uv's cache when it can, else from PyPI); ``environment`` is a scratch venv path."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(UV), "lock", *args], cwd=root, env=env, capture_output=True, text=True, timeout=180)

    locked = run("--offline")
    return locked if locked.returncode == 0 else run()
