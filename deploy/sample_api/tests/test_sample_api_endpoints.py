"""The data endpoints, health, routing and methods, at the default size."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from testkit.sample_api import SampleApi

if TYPE_CHECKING:
    from testkit.sample_api import Fetch

USER_KEYS = {"id", "name", "username", "email", "address", "phone", "website", "company"}
ADDRESS_KEYS = {"street", "suite", "city", "zipcode", "geo"}
COMPANY_KEYS = {"name", "catchPhrase", "bs"}
POST_KEYS = {"userId", "id", "title", "body"}
COMMENT_KEYS = {"postId", "id", "name", "email", "body"}
COORDINATE = re.compile(r"-?\d{1,3}\.\d{4}")


def test_users_have_the_jsonplaceholder_shape(get: Fetch) -> None:
    reply = get("/users")
    users = reply.json()

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.headers["Content-Length"] == str(len(reply.body))
    assert reply.headers["X-Total-Count"] == "10"
    assert [user["id"] for user in users] == list(range(1, 11))
    for user in users:
        assert set(user) == USER_KEYS
        assert set(user["address"]) == ADDRESS_KEYS
        assert set(user["company"]) == COMPANY_KEYS
        assert all(isinstance(user[key], str) for key in USER_KEYS - {"id", "address", "company"})
        assert all(isinstance(value, str) for value in user["company"].values())
        assert isinstance(user["address"]["zipcode"], str)
        assert COORDINATE.fullmatch(user["address"]["geo"]["lat"])
        assert COORDINATE.fullmatch(user["address"]["geo"]["lng"])
        assert "@" in user["email"]
    assert len({user["username"] for user in users}) == 10
    assert len({user["email"] for user in users}) == 10


def test_one_user_matches_the_list_and_unknown_ids_are_404_empty_objects(get: Fetch) -> None:
    users = get("/users").json()

    assert get("/users/3").json() == users[2]
    for missing in ("/users/11", "/users/0", "/users/99999999999"):
        reply = get(missing)
        assert (reply.status, reply.json()) == (404, {})


def test_names_are_sent_as_raw_utf8_with_unicode_variety(api: SampleApi, get: Fetch) -> None:
    api.configure(users=200)
    reply = get("/users")
    names = [user["name"] for user in reply.json()]

    assert any(not name.isascii() for name in names)
    assert b"\\u" not in reply.body  # non-ASCII characters are UTF-8, not escaped
    assert "é".encode() in reply.body or "ö".encode() in reply.body


def test_posts_belong_to_users_in_blocks(get: Fetch) -> None:
    posts = get("/posts").json()

    assert [post["id"] for post in posts] == list(range(1, 101))
    for post in posts:
        assert set(post) == POST_KEYS
        assert post["userId"] == (post["id"] - 1) // 10 + 1
        assert isinstance(post["title"], str) and isinstance(post["body"], str)
    assert len({len(post["title"]) for post in posts}) > 10
    assert len({post["body"].count("\n") for post in posts}) > 1


def test_posts_filter_by_user(get: Fetch) -> None:
    reply = get("/posts?userId=3")

    assert [post["id"] for post in reply.json()] == list(range(21, 31))
    assert {post["userId"] for post in reply.json()} == {3}
    assert reply.headers["X-Total-Count"] == "10"
    assert get("/users/3/posts").body == reply.body
    assert get("/posts?userId=11").json() == []
    assert get("/posts?userId=abc").json() == []
    assert get("/users/11/posts").json() == []


def test_one_post(get: Fetch) -> None:
    assert get("/posts/42").json() == get("/posts").json()[41]
    assert get("/posts/101").status == 404


def test_comments_are_generated_per_post(get: Fetch) -> None:
    reply = get("/comments?postId=7")
    comments = reply.json()

    assert [comment["id"] for comment in comments] == [31, 32, 33, 34, 35]
    assert all(set(comment) == COMMENT_KEYS and comment["postId"] == 7 for comment in comments)
    assert get("/posts/7/comments").body == reply.body
    assert get("/comments/33").json() == comments[2]
    assert get("/comments").headers["X-Total-Count"] == "500"
    assert get("/comments?postId=101").json() == []


@pytest.mark.parametrize(
    ("path", "expected_ids", "total"),
    [
        ("/posts?_start=5&_end=8", [6, 7, 8], 100),
        ("/posts?_limit=3", [1, 2, 3], 100),
        ("/posts?_start=95&_limit=10", [96, 97, 98, 99, 100], 100),
        ("/posts?_start=10&_end=12&_limit=50", [11, 12], 100),
        ("/posts?userId=2&_start=2&_limit=3", [13, 14, 15], 10),
        ("/posts?_start=200", [], 100),
        ("/users?_limit=0", [], 10),
        ("/users?_end=2&colour=blue", [1, 2], 10),
    ],
)
def test_slicing_applies_after_filtering_and_total_counts_before(
    get: Fetch, path: str, expected_ids: list[int], total: int
) -> None:
    reply = get(path)

    assert [record["id"] for record in reply.json()] == expected_ids
    assert reply.headers["X-Total-Count"] == str(total)


def test_a_bad_slicing_parameter_is_a_400_naming_it(get: Fetch) -> None:
    reply = get("/posts?_limit=ten")

    assert reply.status == 400
    assert reply.json() == {"error": "_limit must be a whole number >= 0, got 'ten'"}


def test_unknown_query_parameters_and_trailing_slashes_are_ignored(get: Fetch) -> None:
    assert get("/users/?sort=name").body == get("/users").body


def test_health_reports_the_current_size(api: SampleApi, get: Fetch) -> None:
    assert get("/health").json() == {"status": "ok", "users": 10, "posts": 100}
    api.configure(users=3, posts_per_user=0)
    assert get("/health").json() == {"status": "ok", "users": 3, "posts": 0}
    assert get("/posts").json() == []
    assert len(get("/users").json()) == 3


@pytest.mark.parametrize("path", ["/", "/todos", "/users/1/comments", "/users/abc", "/__admin/nothing"])
def test_unknown_paths_are_404_with_a_json_error(get: Fetch, path: str) -> None:
    reply = get(path)

    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "error" in reply.json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/users", "GET"),
        ("POST", "/posts", "GET"),
        ("PUT", "/posts/1", "GET"),
        ("GET", "/__admin/reset", "POST"),
        ("POST", "/health", "GET"),
    ],
)
def test_other_methods_are_405(get: Fetch, method: str, path: str, allowed: str) -> None:
    reply = get(path, method=method, body=b"{}" if method in ("POST", "PUT") else None)

    assert reply.status == 405
    assert reply.headers["Allow"] == allowed
    assert "error" in reply.json()


def test_head_is_405_without_a_body(get: Fetch) -> None:
    reply = get("/users", method="HEAD")

    assert (reply.status, reply.body) == (405, b"")


def test_unknown_methods_are_501_with_a_json_error(get: Fetch) -> None:
    reply = get("/users", method="BREW")

    assert reply.status == 501
    assert "BREW" in reply.json()["error"]
