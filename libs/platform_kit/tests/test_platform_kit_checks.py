"""Data-quality rules: pass on good data; on bad data, say how many rows fail and which."""

from __future__ import annotations

import pandas as pd
import pytest

from platform_kit.checks import SAMPLE_SIZE, not_blank, references, unique, well_formed_emails


def test_unique_passes_when_every_value_occurs_once() -> None:
    result = unique(pd.DataFrame({"user_id": [1, 2, 3]}), "user_id")

    assert result.passed
    assert result.description is None
    assert result.metadata["failing_rows"].value == 0


def test_unique_counts_every_row_that_shares_a_value() -> None:
    result = unique(pd.DataFrame({"user_id": [1, 1, 2, 3, 3, 3]}), "user_id")

    assert not result.passed
    assert result.description == "5 of 6 rows: duplicate user_id values, e.g. 1, 3"
    assert result.metadata["rows_checked"].value == 6
    assert result.metadata["failing_rows"].value == 5
    assert result.metadata["failing_sample"].value == ["1", "3"]


def test_the_failing_sample_is_capped() -> None:
    result = unique(pd.DataFrame({"id": list(range(50)) * 2}), "id")

    assert result.metadata["failing_rows"].value == 100
    sample = result.metadata["failing_sample"].value
    assert isinstance(sample, list)
    assert len(sample) == SAMPLE_SIZE


@pytest.mark.parametrize("email", ["Sincere@april.biz", "a.b+c@mail.example.co.uk", "zoë@exämple.de"])
def test_well_formed_emails_pass(email: str) -> None:
    assert well_formed_emails(pd.DataFrame({"email": [email]})).passed


@pytest.mark.parametrize("email", ["no-at-sign", "user@localhost", "two@@example.com", "space @example.com", "", None])
def test_malformed_or_missing_emails_fail(email: str | None) -> None:
    frame = pd.DataFrame({"email": pd.Series(["ok@example.com", email], dtype="string")})

    result = well_formed_emails(frame)

    assert not result.passed
    assert result.metadata["failing_rows"].value == 1
    assert str(result.description).startswith("1 of 2 rows: malformed email")


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_not_blank_fails_and_names_the_rows_by_id(value: str | None) -> None:
    frame = pd.DataFrame({"post_id": [10, 11], "title": pd.Series(["fine", value], dtype="string")})

    result = not_blank(frame, "title")

    assert not result.passed
    assert result.metadata["failing_sample"].value == ["11"]


def test_not_blank_passes_on_text() -> None:
    frame = pd.DataFrame({"post_id": [1], "title": ["x"]})

    assert not_blank(frame, "title").passed


def test_references_pass_when_every_child_has_a_parent() -> None:
    users = pd.DataFrame({"user_id": [1, 2]})
    posts = pd.DataFrame({"post_id": [1, 2, 3], "user_id": [1, 1, 2]})

    assert references(posts, "user_id", users, "user_id").passed


def test_references_count_orphan_rows_and_list_missing_parents() -> None:
    users = pd.DataFrame({"user_id": [1]})
    posts = pd.DataFrame({"post_id": [1, 2, 3, 4], "user_id": [1, 7, 7, 9]})

    result = references(posts, "user_id", users, "user_id")

    assert not result.passed
    assert result.metadata["failing_rows"].value == 3
    assert result.metadata["failing_sample"].value == ["7", "9"]
    assert result.description == "3 of 4 rows: user_id not found in user_id, e.g. 7, 9"
