"""run_executor: in-process by default, Dagster's multiprocess executor when a run's config asks."""

from __future__ import annotations

import os

import dagster as dg
import pytest

from platform_kit.executors import run_executor


@dg.op
def first_pid() -> int:
    return os.getpid()


@dg.op
def same_process(first: int) -> bool:
    return first == os.getpid()


@dg.job(executor_def=run_executor)
def two_steps() -> None:
    same_process(first_pid())


def _run(run_config: dict) -> bool:
    with (
        dg.instance_for_test() as instance,
        dg.execute_job(dg.reconstructable(two_steps), instance, run_config=run_config) as result,
    ):
        assert result.success
        return result.output_for_node("same_process")


def test_steps_share_the_run_process_by_default() -> None:
    assert _run({}) is True


@pytest.mark.slow
def test_a_run_can_ask_for_a_process_per_step() -> None:
    assert _run({"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}) is False


def test_a_wrong_option_is_named() -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "max_procs"'):
        _run({"execution": {"config": {"multiprocess": {"max_procs": 2}}}})
