"""The blocking data-quality checks of users_cleaned and posts_cleaned, on small frames."""

import dagster as dg
import pandas as pd
import pytest

from modular_assets.checks import (
    CHECKS,
    authors_exist,
    posts_cleaned_results,
    users_cleaned_results,
)
from modular_assets.transforms import clean_posts, clean_users
from platform_kit.frames import flatten_users, posts_frame


def users(*rows: tuple[int, str | None]) -> pd.DataFrame:
    return clean_users(flatten_users([{"id": i, "name": f"n{i}", "username": f"u{i}", "email": e} for i, e in rows]))


def posts(*rows: tuple[int, int, str]) -> pd.DataFrame:
    return clean_posts(posts_frame([{"id": i, "userId": u, "title": t, "body": "b"} for i, u, t in rows]))


def outcome(results: list[dg.AssetCheckResult]) -> dict[str | None, bool]:
    return {result.check_name: result.passed for result in results}


def check_authors(posts: pd.DataFrame, users: pd.DataFrame) -> dg.AssetCheckResult:
    """``authors_exist`` called directly, as Dagster would call it in a run."""
    result = authors_exist(posts, users)
    assert isinstance(result, dg.AssetCheckResult)
    return result


def test_every_check_is_blocking_and_named_for_its_asset() -> None:
    specs = [spec for checks in CHECKS for spec in checks.check_specs]
    assert {(s.asset_key.to_user_string(), s.name, s.blocking) for s in specs} == {
        ("users_cleaned", "user_ids_are_unique", True),
        ("users_cleaned", "emails_are_well_formed", True),
        ("posts_cleaned", "post_ids_are_unique", True),
        ("posts_cleaned", "titles_are_not_blank", True),
        ("posts_cleaned", "authors_exist", True),
    }


def test_good_users_pass() -> None:
    results = users_cleaned_results(users((1, "a@example.com"), (2, "zoë@bücher.de")))
    assert outcome(results) == {"user_ids_are_unique": True, "emails_are_well_formed": True}
    assert all(r.asset_key == dg.AssetKey("users_cleaned") for r in results)


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        pytest.param([(1, "a@example.com"), (1, "a@example.com")], "user_ids_are_unique", id="duplicate-id"),
        pytest.param([(1, "not an email")], "emails_are_well_formed", id="malformed-email"),
        pytest.param([(1, "a@b@example.com")], "emails_are_well_formed", id="two-at-signs"),
        pytest.param([(1, None)], "emails_are_well_formed", id="missing-email"),
        pytest.param([(1, "   ")], "emails_are_well_formed", id="blank-email"),
    ],
)
def test_bad_users_fail_the_matching_check(rows: list[tuple[int, str | None]], failing: str) -> None:
    results = {r.check_name: r for r in users_cleaned_results(users(*rows))}
    assert [name for name, r in results.items() if not r.passed] == [failing]
    failing_rows = results[failing].metadata["failing_rows"]
    assert isinstance(failing_rows, dg.IntMetadataValue)
    assert (failing_rows.value or 0) >= 1


def test_good_posts_pass() -> None:
    results = posts_cleaned_results(posts((1, 1, "t"), (2, 2, "東京")))
    assert outcome(results) == {"post_ids_are_unique": True, "titles_are_not_blank": True}


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        pytest.param([(1, 1, "t"), (1, 1, "t")], ["post_ids_are_unique"], id="duplicate-id"),
        pytest.param([(1, 1, " \n\t ")], ["titles_are_not_blank"], id="blank-title"),
        pytest.param([(1, 1, "")], ["titles_are_not_blank"], id="empty-title"),
        pytest.param([(1, 1, "t"), (1, 1, "")], ["post_ids_are_unique", "titles_are_not_blank"], id="both"),
    ],
)
def test_bad_posts_fail_the_matching_checks(rows: list[tuple[int, int, str]], failing: list[str]) -> None:
    results = posts_cleaned_results(posts(*rows))
    assert [r.check_name for r in results if not r.passed] == failing


def test_authors_exist_passes_when_every_post_has_its_user() -> None:
    result = check_authors(posts((1, 1, "t"), (2, 2, "t")), users((1, "a@x.io"), (2, "b@x.io")))
    assert result.passed


def test_authors_exist_fails_on_an_orphan_post_and_names_it() -> None:
    result = check_authors(posts((1, 1, "t"), (2, 99, "t"), (3, 99, "t")), users((1, "a@x.io")))
    assert not result.passed
    assert "99" in (result.description or "")
    assert result.metadata["failing_rows"].value == 2
    assert result.metadata["failing_sample"].value == ["99"]
