"""template_tools.access (`make ui-user`, `make ui-token`, `make ui-token-revoke`): roles set in a copy of
the committed access file, its comments kept, every argument checked before anything is written."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
import yaml

from platform_services.access.rules import load_rules
from template_tools import access, generate
from template_tools.kubernetes import ACCESS_CONFIG
from template_tools.locations import ROOT
from template_tools.scaffolding import copy_repo


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(ROOT / "deploy/access/access.yaml", tmp_path / "access.yaml")
    shutil.copy(ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    return tmp_path / "access.yaml", tmp_path / "workspace.yaml"


def run(files: tuple[Path, Path], *args: str) -> int:
    return access.main(["--access", str(files[0]), "--workspace", str(files[1]), *args])


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_roles_are_set_and_the_file_keeps_its_comments(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    original = files[0].read_text()

    assert run(files, "user", "alice", "--team", "analytics", "--role", "editor") == 0
    assert run(files, "user", "alice", "--team", "data-extraction", "--role", "launcher") == 0
    assert run(files, "user", "carol", "--role", "admin") == 0
    assert run(files, "token", "ci-analytics", "--team", "analytics", "--role", "launcher") == 0

    text = files[0].read_text()
    assert comments(text) == comments(original)
    assert "users:\n  alice: {analytics: editor, data-extraction: launcher}\n  carol: admin\n" in text
    assert "tokens:\n  ci-analytics: {analytics: launcher}\n" in text
    rules = load_rules(files[0], files[1], "admin")  # what the service reads
    assert rules.for_user("carol", "session").admin
    assert "users: alice: {analytics: editor, data-extraction: launcher}" in capsys.readouterr().out


def test_admin_replaces_team_roles_and_a_team_role_replaces_admin(files: tuple[Path, Path]) -> None:
    run(files, "user", "alice", "--team", "analytics", "--role", "editor")

    run(files, "user", "alice", "--role", "admin")
    assert "  alice: admin\n" in files[0].read_text()
    run(files, "user", "alice", "--team", "analytics", "--role", "viewer")
    assert "  alice: {analytics: viewer}\n" in files[0].read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["user", "alice", "--team", "simple_ops", "--role", "editor"], "TEAM='simple_ops' is a code location"),
        (["user", "alice", "--team", "billing", "--role", "editor"], "TEAM='billing' is not a team of workspace.yaml"),
        (["user", "alice", "--team", "analytics", "--role", "owner"], "ROLE='owner' is not a role"),
        (["user", "alice", "--team", "analytics", "--role", "admin"], "ROLE=admin is deployment-wide: leave TEAM out"),
        (
            ["user", "alice", "--role", "editor"],
            "ROLE=editor is held per team: add TEAM= (one of analytics, data-extraction)",
        ),
        (["token", "ci analytics", "--role", "admin"], "NAME='ci analytics': a name may only use"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = files[0].read_bytes()

    assert run(files, *args) == 1

    assert message in capsys.readouterr().err
    assert files[0].read_bytes() == before


def test_check_validates_and_writes_nothing(files: tuple[Path, Path]) -> None:
    before = files[0].read_bytes()

    assert run(files, "token", "ci", "--team", "analytics", "--role", "launcher", "--check") == 0

    assert files[0].read_bytes() == before


def test_an_access_file_with_a_mistake_is_not_edited(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files[0].write_text("users:\n  alice: {analytics: owner}\n")

    assert run(files, "user", "bob", "--role", "admin") == 1

    assert "line 2, users: alice: analytics: 'owner' is not a role" in capsys.readouterr().err
    assert "bob" not in files[0].read_text()


def test_removing_a_token_leaves_the_others(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run(files, "token", "ci-a", "--team", "analytics", "--role", "launcher")
    run(files, "token", "ci-b", "--role", "admin")

    assert run(files, "remove-token", "ci-a") == 0
    assert "tokens:\n  ci-b: admin\n" in files[0].read_text()
    assert run(files, "remove-token", "ci-b") == 0
    assert "\ntokens:\ngroups:" in files[0].read_text()  # an empty section, as committed
    assert run(files, "remove-token", "ci-b") == 0
    assert "gives no role to a token named 'ci-b': nothing to remove" in capsys.readouterr().out


def test_the_file_is_replaced_atomically_keeping_its_mode(files: tuple[Path, Path]) -> None:
    files[0].chmod(0o640)
    inode = files[0].stat().st_ino

    run(files, "user", "carol", "--role", "admin")

    assert files[0].stat().st_ino != inode  # a new file: a reader sees the old one or the new one
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o640
    assert not list(files[0].parent.glob(".*.tmp"))


def test_in_a_checkout_the_kubernetes_access_config_map_follows_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make ui-user` on the repository's access file also rewrites its ConfigMap, so `make verify` stays green."""
    repo = copy_repo(tmp_path / "repo")
    access_file = repo / "deploy/access/access.yaml"

    assert access.main(["--access", str(access_file), "--workspace", str(repo / "workspace.yaml"), "user", "alice",
                        "--team", "analytics", "--role", "editor"]) == 0  # fmt: skip

    assert "also wrote deploy/kubernetes/manifests/access-config.yaml" in capsys.readouterr().out
    [config_map] = [doc for doc in yaml.safe_load_all((repo / ACCESS_CONFIG).read_text()) if doc]
    assert config_map["data"]["access.yaml"] == access_file.read_text()
    assert generate.main(["--root", str(repo), "--check"]) == 0
