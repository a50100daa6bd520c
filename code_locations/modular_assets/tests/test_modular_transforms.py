"""The transforms layer's pandas logic, without Dagster."""

from typing import Any

import pandas as pd
import pytest
from pandas.errors import MergeError

from modular_assets.transforms import (
    AUTHOR_COLUMNS,
    clean_posts,
    clean_users,
    enrich_posts,
    normalize_whitespace,
)
from platform_kit.frames import flatten_users, posts_frame


def user(user_id: int, name: str = "Ann Lee", email: str | None = "ann@example.com", **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": user_id,
        "name": name,
        "username": f"user{user_id}",
        "email": email,
        "address": {"street": "Main St", "city": "Zürich", "zipcode": "8000", "geo": {"lat": "47.3", "lng": "8.5"}},
        "company": {"name": "Acme"},
    }
    record.update(extra)
    return record


def post(post_id: int, user_id: int, title: str = "a title", body: str = "a body") -> dict[str, Any]:
    return {"id": post_id, "userId": user_id, "title": title, "body": body}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  two  spaces\tand a\ttab ", "two spaces and a tab"),
        ("line one\nline two\r\n", "line one line two"),
        ("already clean", "already clean"),
        ("   ", ""),
        ("", ""),
        ("façade  東京\u00a0café", "façade 東京 café"),
    ],
)
def test_normalize_whitespace(raw: str, expected: str) -> None:
    assert normalize_whitespace(pd.Series([raw], dtype="string")).tolist() == [expected]


def test_normalize_whitespace_keeps_nulls_and_the_index() -> None:
    values = pd.Series(["a  b", None], index=[7, 3], dtype="string", name="title")
    result = normalize_whitespace(values)
    assert result.index.tolist() == [7, 3]
    assert result.name == "title"
    assert result.iloc[0] == "a b"
    assert pd.isna(result.iloc[1])


def test_clean_users_trims_text_sorts_by_id_and_keeps_unicode() -> None:
    raw = flatten_users([user(2, name="  Zoë   Ångström "), user(1, name="Łukasz Dvořák")])
    users = clean_users(raw)
    assert users["user_id"].tolist() == [1, 2]
    assert users["name"].tolist() == ["Łukasz Dvořák", "Zoë Ångström"]
    assert users.dtypes.equals(raw.dtypes)


def test_clean_users_turns_blank_text_into_null_and_keeps_missing_nested_fields_null() -> None:
    bare = {"id": 3, "name": "No Address", "username": "bare", "email": "   "}
    users = clean_users(flatten_users([bare]))
    assert pd.isna(users.loc[0, "email"])
    assert users.loc[0, ["street", "city", "zipcode", "lat", "lng", "company_name"]].isna().all()


def test_clean_users_keeps_duplicate_ids_for_the_checks() -> None:
    users = clean_users(flatten_users([user(1), user(1), user(2)]))
    assert users["user_id"].tolist() == [1, 1, 2]


def test_clean_posts_normalises_titles_and_bodies_and_sorts_by_id() -> None:
    raw = posts_frame([post(2, 1, title=" second\n", body="b\n\nc"), post(1, 1, title="first  one", body=" x ")])
    posts = clean_posts(raw)
    assert posts.to_dict("list") == {
        "post_id": [1, 2],
        "user_id": [1, 1],
        "title": ["first one", "second"],
        "body": ["x", "b c"],
    }
    assert posts.dtypes.equals(raw.dtypes)
    assert raw["title"].tolist() == [" second\n", "first  one"], "the input must not change"


def test_clean_posts_keeps_duplicate_ids_and_blank_titles_for_the_checks() -> None:
    posts = clean_posts(posts_frame([post(1, 1), post(1, 1, title="  ")]))
    assert posts["post_id"].tolist() == [1, 1]
    assert posts["title"].tolist() == ["a title", ""]


def test_enrich_posts_adds_the_author_details() -> None:
    users = clean_users(flatten_users([user(1, name="Zoë"), user(2, name="Bo")]))
    posts = clean_posts(posts_frame([post(1, 2), post(2, 1), post(3, 2)]))
    enriched = enrich_posts(posts, users)
    assert enriched.columns.tolist() == ["post_id", "user_id", "title", "body", *AUTHOR_COLUMNS.values()]
    assert enriched["post_id"].tolist() == [1, 2, 3]
    assert enriched["author_name"].tolist() == ["Bo", "Zoë", "Bo"]
    assert enriched.loc[0, ["author_username", "author_email", "author_company", "author_city"]].tolist() == [
        "user2",
        "ann@example.com",
        "Acme",
        "Zürich",
    ]


def test_enrich_posts_leaves_an_orphan_post_without_author() -> None:
    users = clean_users(flatten_users([user(1)]))
    enriched = enrich_posts(clean_posts(posts_frame([post(1, 1), post(2, 99)])), users)
    assert len(enriched) == 2
    assert enriched.loc[1, list(AUTHOR_COLUMNS.values())].isna().all()


def test_enrich_posts_refuses_duplicate_users_rather_than_duplicating_posts() -> None:
    users = clean_users(flatten_users([user(1), user(1)]))
    with pytest.raises(MergeError):
        enrich_posts(clean_posts(posts_frame([post(1, 1)])), users)
