"""The analytics layer's pandas logic, without Dagster."""

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from modular_assets.analytics import activity_stats, rank_top_authors, summarize


def users_frame(*rows: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "name": pd.Series([r[1] for r in rows], dtype="string"),
            "username": pd.Series([f"u{r[0]}" for r in rows], dtype="string"),
        }
    )


def posts_of(*rows: tuple[int, str, str]) -> pd.DataFrame:
    """Posts from (user_id, title, body) rows; post ids 1..n."""
    return pd.DataFrame(
        {
            "post_id": pd.Series(range(1, len(rows) + 1), dtype="int64"),
            "user_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "title": pd.Series([r[1] for r in rows], dtype="string"),
            "body": pd.Series([r[2] for r in rows], dtype="string"),
        }
    )


def stats_frame(*rows: tuple[int, int, float | None]) -> pd.DataFrame:
    """user_activity_stats-shaped rows from (user_id, total_posts, avg_body_length)."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "name": [f"name {r[0]}" for r in rows],
            "username": [f"u{r[0]}" for r in rows],
            "total_posts": [r[1] for r in rows],
            "avg_title_length": [10.0] * len(rows),
            "avg_body_length": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )


def test_activity_stats_counts_posts_and_lengths_per_user() -> None:
    users = users_frame((1, "Zoë Ångström"), (2, "李雷"))
    posts = posts_of((1, "abc", "12345"), (1, "abcde", "1"), (2, "東京", "ab"))
    stats = activity_stats(users, posts)
    assert stats.to_dict("list") == {
        "user_id": [1, 2],
        "name": ["Zoë Ångström", "李雷"],
        "username": ["u1", "u2"],
        "total_posts": [2, 1],
        "avg_title_length": [4.0, 2.0],
        "avg_body_length": [3.0, 2.0],
        "min_body_length": [1, 2],
        "max_body_length": [5, 2],
    }


def test_activity_stats_includes_users_without_posts() -> None:
    stats = activity_stats(users_frame((1, "Ann"), (2, "Bo")), posts_of((2, "t", "body")))
    no_posts = stats.set_index("user_id").loc[1]
    assert no_posts["total_posts"] == 0
    assert stats["total_posts"].dtype == "int64"
    assert pd.isna(no_posts["avg_title_length"]) and pd.isna(no_posts["avg_body_length"])
    assert pd.isna(no_posts["min_body_length"]) and pd.isna(no_posts["max_body_length"])


def test_activity_stats_with_no_posts_at_all() -> None:
    stats = activity_stats(users_frame((1, "Ann")), posts_of())
    assert stats["total_posts"].tolist() == [0]


def test_activity_stats_ignores_posts_of_unknown_users_and_rounds_averages() -> None:
    posts = posts_of((1, "a", "x"), (1, "ab", "xx"), (1, "ab", "xx"), (99, "orphan", "orphan"))
    stats = activity_stats(users_frame((1, "Ann")), posts)
    assert stats["user_id"].tolist() == [1]
    assert stats.loc[0, "total_posts"] == 3
    assert stats.loc[0, "avg_title_length"] == 1.67


def test_rank_top_authors_orders_by_posts_then_body_length_then_id() -> None:
    stats = stats_frame(
        (1, 3, 50.0),
        (2, 5, 10.0),
        (3, 3, 80.0),  # ties with 1 and 4 on posts: longer bodies first
        (4, 3, 80.0),  # ties with 3 on posts and body length: smaller id first
        (5, 0, None),  # no posts: last
        (6, 4, 1.0),
        (7, 3, 50.0),
    )
    top = rank_top_authors(stats)
    assert top["user_id"].tolist() == [2, 6, 3, 4, 1]
    assert top["rank"].tolist() == [1, 2, 3, 4, 5]
    assert top.columns.tolist() == [
        "rank",
        "user_id",
        "name",
        "username",
        "total_posts",
        "avg_title_length",
        "avg_body_length",
    ]


def test_rank_top_authors_is_independent_of_input_order() -> None:
    stats = stats_frame(*[(user_id, 2, 20.0) for user_id in range(1, 9)])
    shuffled = stats.sample(frac=1, random_state=3)
    assert rank_top_authors(shuffled)["user_id"].tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("users", [0, 1, 5, 6])
def test_rank_top_authors_keeps_at_most_five(users: int) -> None:
    stats = stats_frame(*[(user_id, user_id, 1.0) for user_id in range(1, users + 1)])
    assert len(rank_top_authors(stats)) == min(users, 5)


def test_rank_top_authors_puts_users_without_posts_last() -> None:
    stats = stats_frame((1, 0, None), (2, 0, None), (3, 1, 5.0))
    assert rank_top_authors(stats)["user_id"].tolist() == [3, 1, 2]


def test_summarize_reports_dataset_wide_statistics() -> None:
    users = users_frame((1, "Ann"), (2, "Bo"), (3, "Cy"))
    posts = posts_of((1, "ab", "1234"), (1, "abcd", "12"), (2, "abc", "123456"))
    when = datetime(2026, 3, 1, 7, 30, tzinfo=timezone(timedelta(hours=1)))
    assert summarize(users, posts, generated_at=when) == {
        "total_users": 3,
        "total_posts": 3,
        "users_without_posts": 1,
        "avg_posts_per_user": 1.0,
        "avg_title_length": 3.0,
        "avg_body_length": 4.0,
        "generated_at": "2026-03-01T06:30:00+00:00",
    }


def test_summarize_without_users_or_posts_does_not_divide_by_zero() -> None:
    summary = summarize(users_frame(), posts_of(), generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert summary["total_users"] == summary["total_posts"] == summary["users_without_posts"] == 0
    assert summary["avg_posts_per_user"] == summary["avg_title_length"] == summary["avg_body_length"] == 0.0
