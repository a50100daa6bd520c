"""`make ui-user`: what it refuses, and what it writes (init_env run as `make` runs it, on a copy of the repo)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from template_tools.scaffolding import copy_repo


def ui_user(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = root / "tools" / "src" / "template_tools" / "init_env.py"
    return subprocess.run([sys.executable, str(script), "add-user", *args], capture_output=True, text=True, timeout=60)


def test_a_password_shorter_than_12_characters_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")

    refused = ui_user(root, "alice", "--password", "elevenchars")

    assert refused.returncode == 1
    assert "has 11 characters; use at least 12" in refused.stderr
    assert not (root / ".secrets" / "htpasswd").exists()


def test_a_random_password_is_the_default_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")

    added = ui_user(root, "alice")

    assert added.returncode == 0, added.stderr
    password = added.stdout.split("with password ", 1)[1].split(";", 1)[0]
    assert len(password) >= 12
    line = (root / ".secrets" / "htpasswd").read_text().strip()
    assert line.startswith("alice:$6$")
    assert password not in line
