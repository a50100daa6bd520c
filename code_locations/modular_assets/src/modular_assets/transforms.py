"""Transforms layer: cleaned users and posts, and posts joined with their authors.

The pandas logic lives in plain functions (``clean_users``, ``clean_posts``,
``enrich_posts``) that the assets call, so it is tested without Dagster.
Cleaning never drops or merges rows: duplicates and orphans must reach the
blocking asset checks (:mod:`modular_assets.checks`) and stop the run there,
not disappear silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from modular_assets.constants import OWNERS
from platform_kit.frames import DataFrame
from platform_kit.metadata import frame_metadata

if TYPE_CHECKING:  # pandas is imported where it runs: see platform_kit.frames.DataFrame
    import pandas as pd

GROUP = "transforms"
TAGS = {"layer": GROUP}

#: Author columns added to each post: users_cleaned column -> posts_with_user_info column.
AUTHOR_COLUMNS = {
    "name": "author_name",
    "username": "author_username",
    "email": "author_email",
    "company_name": "author_company",
    "city": "author_city",
}


def normalize_whitespace(values: pd.Series) -> pd.Series:
    """Trim text and collapse every run of white space (newlines, tabs) into one space.

    Nulls stay null; a value that is only white space becomes an empty string
    (the ``titles_are_not_blank`` check reports those). ``str.split``/``str.join``
    in a comprehension, not a regex replace: it is several times faster on
    pandas' python-backed strings (docs/decisions.md#whitespace-without-regex).
    """
    import pandas as pd

    cleaned = [
        " ".join(value.split()) if isinstance(value, str) else None
        for value in values.to_numpy(dtype=object, na_value=None)
    ]
    return pd.Series(cleaned, index=values.index, dtype="string", name=values.name)


def _sorted_by(frame: DataFrame, column: str) -> DataFrame:
    """``frame`` sorted by ``column`` (stable), with a fresh 0..n-1 index; no copy if already so."""
    import pandas as pd

    if frame[column].is_monotonic_increasing and isinstance(frame.index, pd.RangeIndex):
        return frame.reset_index(drop=True)
    return frame.sort_values(column, kind="stable", ignore_index=True)


def clean_users(raw: DataFrame) -> DataFrame:
    """Users with trimmed, single-spaced text (blank text becomes null), sorted by user_id.

    Values are otherwise kept as they are (unicode names included); rows are
    never dropped, so duplicate ids stay visible to the checks.
    """
    import pandas as pd

    cleaned = {}
    for column in raw.columns:
        if isinstance(raw[column].dtype, pd.StringDtype):
            text = normalize_whitespace(raw[column])
            cleaned[column] = text.mask((text == "").fillna(False))
    return _sorted_by(raw.assign(**cleaned), "user_id")


def clean_posts(raw: DataFrame) -> DataFrame:
    """Posts with whitespace-normalised titles and bodies, sorted by post_id."""
    posts = raw.assign(title=normalize_whitespace(raw["title"]), body=normalize_whitespace(raw["body"]))
    return _sorted_by(posts, "post_id")


def enrich_posts(posts: DataFrame, users: DataFrame) -> DataFrame:
    """Every post with its author's name, username, email, company and city.

    A left join on user_id: a post whose author is unknown keeps null author
    columns (``posts_cleaned``'s blocking ``authors_exist`` check stops the
    run before that can reach an export). Fails if a user_id occurs twice in
    ``users``, which would duplicate posts.
    """
    authors = users[["user_id", *AUTHOR_COLUMNS]].rename(columns=AUTHOR_COLUMNS)
    return posts.merge(authors, on="user_id", how="left", validate="many_to_one", sort=False)


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def users_cleaned(api_users_raw: DataFrame) -> dg.Output[DataFrame]:
    """Flattened, typed users (user_id, name, username, email, phone, website, street, city,
    zipcode, lat, lng, company_name) with trimmed text, sorted by user_id.

    Checked (blocking): user_id is unique, every email is well formed.
    """
    frame = clean_users(api_users_raw)
    return dg.Output(frame, metadata=frame_metadata(frame))


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def posts_cleaned(api_posts_raw: DataFrame) -> dg.Output[DataFrame]:
    """Typed posts (post_id, user_id, title, body), titles and bodies trimmed with every run of
    white space (including line breaks) collapsed into one space, sorted by post_id.

    Checked (blocking): post_id is unique, no title is blank, every post's user exists.
    """
    frame = clean_posts(api_posts_raw)
    return dg.Output(frame, metadata=frame_metadata(frame))


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"pandas"}, tags=TAGS)
def posts_with_user_info(posts_cleaned: DataFrame, users_cleaned: DataFrame) -> dg.Output[DataFrame]:
    """Posts joined with their author on user_id: post_id, user_id, title, body, author_name,
    author_username, author_email, author_company, author_city.
    """
    frame = enrich_posts(posts_cleaned, users_cleaned)
    return dg.Output(frame, metadata=frame_metadata(frame))


ASSETS = [users_cleaned, posts_cleaned, posts_with_user_info]
