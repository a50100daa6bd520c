"""template_tools.deploy's refusals that need no stack (tests/e2e/test_e2e_13_deploys.py drives the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from template_tools import deploy
from template_tools.switch import DeployError, Location, Log


def test_failing_tests_stop_a_deploy_and_show_their_output(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(
        "test-location:\n\t@echo 'FAILED tests/test_assets.py::test_users - 1 failed'; exit 1\n"
    )

    with pytest.raises(DeployError) as refused:
        deploy.test(tmp_path, Location("billing_reports", "billing", "billing_reports"), Log())

    assert "the tests of billing_reports failed, so nothing was deployed" in str(refused.value)
    assert "FAILED tests/test_assets.py::test_users" in str(refused.value)


def test_passing_tests_let_it_go_on(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("test-location:\n\t@test '$(LOCATION)' = billing_reports\n")

    deploy.test(tmp_path, Location("billing_reports", "billing", "billing_reports"), Log())


def test_a_second_deploy_of_a_location_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    with deploy.exclusive(tmp_path, "simple_ops", "deploy"):
        refused = pytest.raises(DeployError, match=r"already running \(deploy by pid \d+ since .*\).*keeps serving")
        with refused, deploy.exclusive(tmp_path, "simple_ops", "rollback"):
            pass
        with deploy.exclusive(tmp_path, "modular_assets", "deploy"):  # another location: its own lock
            pass
    with deploy.exclusive(tmp_path, "simple_ops", "rollback"):  # released
        pass


def test_an_unknown_location_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(
        DeployError, match=r"no code location 'billing' in workspace.yaml \(there are: simple_ops, modular_assets\)"
    ):
        deploy.find_location(deploy.ROOT, "billing")


def test_the_command_line_asks_for_the_location(capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy.main(["rollback"]) == 1
    assert "name the code location: make rollback LOCATION=<name>" in capsys.readouterr().err
