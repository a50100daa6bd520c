"""Blocking data-quality checks on ``transformed_user_data``.

A failing check stops ``user_data_csv`` and ``data_extraction_summary`` in the
same run, so bad data never reaches the export. The rules are the ones the ops
path enforces too (:data:`simple_ops.extraction.QUALITY_RULES`).
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from platform_kit.frames import DataFrame
from simple_ops.assets import transformed_user_data
from simple_ops.extraction import QUALITY_RULES


def _blocking_check(name: str, rule: Callable[[DataFrame], dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=transformed_user_data, name=name, description=rule.__doc__, blocking=True)
    def _check(transformed_user_data: DataFrame) -> dg.AssetCheckResult:
        return rule(transformed_user_data)

    return _check


CHECKS = [_blocking_check(name, rule) for name, rule in QUALITY_RULES.items()]
