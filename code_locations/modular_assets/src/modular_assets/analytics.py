"""Analytics layer: per-user activity, the top authors and dataset-wide statistics.

The pandas logic lives in plain functions (``activity_stats``,
``rank_top_authors``, ``summarize``) that the assets call.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from modular_assets.constants import OWNERS
from platform_kit.frames import DataFrame
from platform_kit.metadata import frame_metadata

GROUP = "analytics"
TAGS = {"layer": GROUP}

#: How many authors top_authors keeps.
TOP_N = 5

#: top_authors order: most posts first, then longer bodies, then the smaller id.
TOP_AUTHORS_ORDER = (("total_posts", False), ("avg_body_length", False), ("user_id", True))

#: Decimals of the averages in user_activity_stats and data_summary.
DECIMALS = 2


def activity_stats(users: DataFrame, posts: DataFrame) -> DataFrame:
    """One row per user, users without posts included.

    Columns: user_id, name, username, total_posts (0 without posts),
    avg_title_length, avg_body_length (characters, rounded to 2 decimals),
    min_body_length, max_body_length (null without posts: there is nothing
    to average). Posts whose user is unknown are not counted. Sorted by user_id.
    """
    import pandas as pd

    lengths = pd.DataFrame(
        {
            "user_id": posts["user_id"],
            "title_length": posts["title"].str.len(),
            "body_length": posts["body"].str.len(),
        }
    )
    per_user = lengths.groupby("user_id", sort=False).agg(
        total_posts=("user_id", "size"),
        avg_title_length=("title_length", "mean"),
        avg_body_length=("body_length", "mean"),
        min_body_length=("body_length", "min"),
        max_body_length=("body_length", "max"),
    )
    stats = users[["user_id", "name", "username"]].merge(
        per_user, left_on="user_id", right_index=True, how="left", sort=False
    )
    return stats.assign(
        total_posts=stats["total_posts"].fillna(0).astype("int64"),
        avg_title_length=stats["avg_title_length"].astype("float64").round(DECIMALS),
        avg_body_length=stats["avg_body_length"].astype("float64").round(DECIMALS),
        min_body_length=stats["min_body_length"].astype("Int64"),
        max_body_length=stats["max_body_length"].astype("Int64"),
    ).sort_values("user_id", kind="stable", ignore_index=True)


def rank_top_authors(stats: DataFrame, n: int = TOP_N) -> DataFrame:
    """The ``n`` most active authors, ranked 1..n.

    Order: total_posts descending, then avg_body_length descending (nulls
    last), then user_id ascending, so ties always resolve the same way.
    Columns: rank, user_id, name, username, total_posts, avg_title_length,
    avg_body_length.
    """
    import pandas as pd

    columns, ascending = zip(*TOP_AUTHORS_ORDER, strict=True)
    top = (
        stats.sort_values(list(columns), ascending=list(ascending), na_position="last", kind="stable")
        .head(n)
        .reset_index(drop=True)
    )
    top.insert(0, "rank", pd.RangeIndex(1, len(top) + 1))
    return top[["rank", "user_id", "name", "username", "total_posts", "avg_title_length", "avg_body_length"]]


def summarize(users: DataFrame, posts: DataFrame, generated_at: datetime) -> dict[str, Any]:
    """Dataset-wide statistics as plain JSON-ready values.

    Keys: total_users, total_posts, users_without_posts, avg_posts_per_user,
    avg_title_length, avg_body_length (characters, over all posts; 0 when
    there is nothing to average) and generated_at (ISO 8601, UTC).
    """
    total_users = len(users)
    total_posts = len(posts)
    users_without_posts = int((~users["user_id"].isin(posts["user_id"])).sum())

    def mean_length(column: str) -> float:
        return round(float(posts[column].str.len().mean()), DECIMALS) if total_posts else 0.0

    return {
        "total_users": total_users,
        "total_posts": total_posts,
        "users_without_posts": users_without_posts,
        "avg_posts_per_user": round(total_posts / total_users, DECIMALS) if total_users else 0.0,
        "avg_title_length": mean_length("title"),
        "avg_body_length": mean_length("body"),
        "generated_at": generated_at.astimezone(UTC).isoformat(timespec="seconds"),
    }


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def user_activity_stats(users_cleaned: DataFrame, posts_cleaned: DataFrame) -> dg.Output[DataFrame]:
    """Activity per user, users without posts included (total_posts = 0).

    Columns: user_id, name, username, total_posts, avg_title_length,
    avg_body_length (characters, 2 decimals), min_body_length, max_body_length
    (null for users without posts). Sorted by user_id.
    """
    frame = activity_stats(users_cleaned, posts_cleaned)
    return dg.Output(frame, metadata=frame_metadata(frame))


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def top_authors(user_activity_stats: DataFrame) -> dg.Output[DataFrame]:
    """The 5 most active authors, ranked 1-5.

    Order (deterministic, ties included): total_posts descending, then
    avg_body_length descending (as rounded in user_activity_stats; users
    without posts last), then user_id ascending.
    """
    frame = rank_top_authors(user_activity_stats)
    return dg.Output(frame, metadata=frame_metadata(frame))


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def data_summary(users_cleaned: DataFrame, posts_cleaned: DataFrame) -> dg.Output[dict[str, Any]]:
    """Dataset-wide statistics: total_users, total_posts, users_without_posts, avg_posts_per_user,
    avg_title_length, avg_body_length (over all posts) and generated_at (UTC).

    Each value is also materialization metadata, so the UI plots it over time.
    """
    summary = summarize(users_cleaned, posts_cleaned, generated_at=datetime.now(UTC))
    return dg.Output(summary, metadata=summary)


ASSETS = [user_activity_stats, top_authors, data_summary]
