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
    """`make new-location` (without its `make lock`) against ``root``."""
    return _tool("template_tools.new_location", root, *args)


def remove_location(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make remove-location` against ``root``."""
    return _tool("template_tools.remove_location", root, *args)


def lock(root: Path, environment: Path, *locations: str) -> subprocess.CompletedProcess[str]:
    """`make lock` in ``root`` (with ``locations``: `make lock LOCATION=...` of each), from uv's cache when
    it can, else from PyPI; ``environment`` is a scratch venv path, so no step touches a real one."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment)}

    def run(*offline: str) -> subprocess.CompletedProcess[str]:
        steps = [] if locations else [[str(UV), "lock", *offline]]
        only = [arg for name in locations for arg in ("--location", name)]
        steps.append(
            [sys.executable, "-m", "template_tools.locks", "--root", str(root), "--uv", str(UV), "lock", *only]
        )
        out, err = [], []
        for step in steps:
            result = subprocess.run(
                step,
                cwd=root,
                env={**env, "UV_OFFLINE": "1"} if offline else env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            out.append(result.stdout)
            err.append(result.stderr)
            if result.returncode:
                break
        return subprocess.CompletedProcess(steps[-1], result.returncode, "".join(out), "".join(err))

    locked = run("--offline")
    return locked if locked.returncode == 0 else run()


def sync(root: Path, location: str, environment: Path) -> Path:
    """The location's own environment (`make venv`: from its lock in ``root``), made at ``environment``
    (outside the copy, so that snapshots of the copy stay small); its bin folder."""
    folder = root / "code_locations" / location
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment)}
    for network in ("--offline", "--no-offline"):
        command = [str(UV), "sync", "--frozen", network, "--project", str(folder)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode == 0:
            break
    else:
        raise RuntimeError(f"uv sync of {folder} failed:\n{result.stderr}")
    return environment / "bin"
