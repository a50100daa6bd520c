"""Source records to typed DataFrames: shapes, dtypes and the edge cases of real data."""

from __future__ import annotations

import math
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from platform_kit.frames import POST_COLUMNS, USER_COLUMNS, DataFrame, flatten_users, posts_frame


def user(ident: int = 1, **changes: Any) -> dict[str, Any]:
    """A complete JSONPlaceholder user record, with ``changes`` applied on top."""
    record: dict[str, Any] = {
        "id": ident,
        "name": "Leanne Graham",
        "username": "Bret",
        "email": "Sincere@april.biz",
        "address": {
            "street": "Kulas Light",
            "suite": "Apt. 556",
            "city": "Gwenborough",
            "zipcode": "92998-3874",
            "geo": {"lat": "-37.3159", "lng": "81.1496"},
        },
        "phone": "1-770-736-8031 x56442",
        "website": "hildegard.org",
        "company": {"name": "Romaguera-Crona", "catchPhrase": "c", "bs": "b"},
    }
    record.update(changes)
    return record


def test_a_complete_user_becomes_one_typed_row() -> None:
    frame = flatten_users([user()])

    assert list(frame.columns) == list(USER_COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == dict(USER_COLUMNS)
    assert frame.iloc[0].to_dict() == {
        "user_id": 1,
        "name": "Leanne Graham",
        "username": "Bret",
        "email": "Sincere@april.biz",
        "phone": "1-770-736-8031 x56442",
        "website": "hildegard.org",
        "street": "Kulas Light",
        "city": "Gwenborough",
        "zipcode": "92998-3874",
        "lat": -37.3159,
        "lng": 81.1496,
        "company_name": "Romaguera-Crona",
    }


@pytest.mark.parametrize(
    ("changes", "removed", "null_columns"),
    [
        ({}, ["address"], ["street", "city", "zipcode", "lat", "lng"]),
        ({"address": "Kulas Light 1"}, [], ["street", "city", "zipcode", "lat", "lng"]),
        ({"address": {"street": "Kulas Light"}}, [], ["city", "zipcode", "lat", "lng"]),
        ({"address": {"city": "Gwenborough", "geo": None}}, [], ["street", "zipcode", "lat", "lng"]),
        ({"company": {}}, [], ["company_name"]),
        ({}, ["company", "phone", "website"], ["company_name", "phone", "website"]),
        ({"phone": None, "website": None}, [], ["phone", "website"]),
    ],
    ids=[
        "no-address",
        "address-not-object",
        "no-geo",
        "geo-null",
        "company-empty",
        "optional-keys-absent",
        "contact-null",
    ],
)
def test_missing_nested_fields_become_nulls(
    changes: dict[str, Any], removed: list[str], null_columns: list[str]
) -> None:
    record = user(**changes)
    for key in removed:
        del record[key]

    row = flatten_users([record]).iloc[0]

    assert sorted(name for name in USER_COLUMNS if pd.isna(row[name])) == sorted(null_columns)


@pytest.mark.parametrize(
    ("lat", "expected"),
    [("-37.3159", -37.3159), (12.5, 12.5), (0, 0.0), ("north", None), ("", None), (None, None)],
)
def test_latitude_is_a_float_and_non_numbers_become_nan(lat: object, expected: float | None) -> None:
    record = user(address={"geo": {"lat": lat, "lng": "1"}})

    value = flatten_users([record])["lat"].iloc[0]

    assert math.isnan(value) if expected is None else value == expected


@pytest.mark.parametrize("name", ["Zoë Ångström", "Łukasz Dvořák", "東京 太郎", "O'Connor | Sons"])
def test_unicode_and_punctuation_survive_unchanged(name: str) -> None:
    frame = flatten_users([user(name=name, address={"city": "Kraków"})])

    assert frame.loc[0, "name"] == name
    assert frame.loc[0, "city"] == "Kraków"


def test_duplicate_users_are_kept_for_the_checks_to_find() -> None:
    frame = flatten_users([user(1), user(2), user(1)])

    assert frame["user_id"].tolist() == [1, 2, 1]


def test_no_users_give_an_empty_frame_with_the_full_schema() -> None:
    frame = flatten_users([])

    assert frame.empty
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == dict(USER_COLUMNS)


def test_posts_keep_their_owner_and_text() -> None:
    records = [
        {"id": 1, "userId": 1, "title": "sunt aut", "body": "quia et\nsuscipit"},
        {"id": 2, "userId": 3, "title": "qui est esse", "body": ""},
    ]

    frame = posts_frame(records)

    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == dict(POST_COLUMNS)
    assert frame.to_dict("records") == [
        {"post_id": 1, "user_id": 1, "title": "sunt aut", "body": "quia et\nsuscipit"},
        {"post_id": 2, "user_id": 3, "title": "qui est esse", "body": ""},
    ]


def test_a_post_without_title_or_body_has_nulls_there() -> None:
    frame = posts_frame([{"id": 7, "userId": 1}])

    assert frame.loc[0, "post_id"] == 7
    assert pd.isna(frame.loc[0, "title"]) and pd.isna(frame.loc[0, "body"])


def test_the_dataframe_type_passes_frames_and_names_what_else_it_got() -> None:
    assert dg.check_dagster_type(DataFrame, pd.DataFrame({"a": [1]})).success
    failed = dg.check_dagster_type(DataFrame, [{"a": 1}])
    assert not failed.success
    assert failed.description == "Expected a pandas DataFrame, got list."
