"""SourceApiResource against a real sample-api process: success, validation, retries, limits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from platform_kit.source_api import (
    POST_FIELDS,
    USER_FIELDS,
    SourceApiError,
    SourceApiResource,
    validate_records,
)
from testkit.sample_api import SampleApi


def test_fetch_users_returns_every_user_with_the_required_fields(client: SourceApiResource) -> None:
    users = client.fetch_users()

    assert [user["id"] for user in users] == list(range(1, 11))
    for user in users:
        for name, kind in USER_FIELDS.items():
            assert isinstance(user[name], kind)
        assert {"street", "city", "zipcode", "geo"} <= set(user["address"])


def test_fetch_posts_returns_posts_owned_by_their_users(client: SourceApiResource) -> None:
    posts = client.fetch_posts()

    assert len(posts) == 100
    assert all(set(POST_FIELDS) <= set(post) for post in posts)
    assert [post["userId"] for post in posts] == [(i - 1) // 10 + 1 for i in range(1, 101)]


@pytest.mark.parametrize(
    ("mode", "fetch", "endpoint", "problem"),
    [
        ("malformed", "fetch_users", "/users", "the response is not valid JSON"),
        ("malformed", "fetch_users", "/users", "'text/html; charset=utf-8'"),
        ("truncated", "fetch_posts", "/posts", "the response is not valid JSON"),
        ("drift_missing", "fetch_users", "/users", "missing required field(s) email"),
        ("drift_missing", "fetch_posts", "/posts", "missing required field(s) userId"),
        ("drift_renamed", "fetch_users", "/users", "it has address, company, emailAddress"),
        ("drift_renamed", "fetch_posts", "/posts", "missing required field(s) userId; it has body"),
        ("empty", "fetch_users", "/users", "the API returned an empty list"),
        ("wrong_shape", "fetch_posts", "/posts", "expected a JSON list of records, got a JSON dict"),
    ],
)
def test_unusable_payloads_raise_an_error_naming_endpoint_and_problem(
    api: SampleApi, client: SourceApiResource, mode: str, fetch: str, endpoint: str, problem: str
) -> None:
    api.configure(mode=mode)

    with pytest.raises(SourceApiError) as raised:
        getattr(client, fetch)()

    message = str(raised.value)
    assert message.startswith(f"GET {api.url}{endpoint}")
    assert problem in message
    assert "SOURCE_API_URL" in message
    assert api.stats()["requests"] == 1  # a bad payload is not retried


def test_duplicate_ids_pass_validation_so_that_checks_can_report_them(
    api: SampleApi, client: SourceApiResource
) -> None:
    api.configure(mode="duplicate_ids")

    ids = [user["id"] for user in client.fetch_users()]

    assert ids == [1, *range(1, 11)]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([{"id": True, "name": "n", "username": "u", "email": "e@x.io"}], "'id' = True, expected int"),
        ([{"id": "1", "name": "n", "username": "u", "email": "e@x.io"}], "'id' = '1', expected int"),
        ([{"id": 1, "name": None, "username": "u", "email": "e@x.io"}], "'name' = None, expected str"),
        ([["not", "an", "object"]], "record #0 is a JSON list, not an object"),
        ("a string", "got a JSON str"),
    ],
)
def test_validate_records_rejects_wrong_types(payload: object, problem: str) -> None:
    with pytest.raises(SourceApiError, match=r"^GET /users: ") as raised:
        validate_records(payload, "/users", USER_FIELDS, "HINT")

    assert problem in str(raised.value)
    assert str(raised.value).endswith("HINT")


def test_a_5xx_burst_is_retried_until_it_succeeds(api: SampleApi, client: SourceApiResource) -> None:
    api.configure(fail_next=2, error_status=500, fault_paths=["/users"])

    assert len(client.fetch_users()) == 10

    stats = api.stats()
    assert stats["by_path"] == {"/users": 3}
    assert stats["by_status"] == {"500": 2, "200": 1}


def test_backoff_doubles_between_attempts(api: SampleApi) -> None:
    api.configure(fail_next=3, error_status=502)
    delays: list[float] = []
    resource = SourceApiResource(base_url=api.url, backoff_seconds=1.0, max_attempts=4)

    resource.get("/users", sleep=delays.append)

    assert delays == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(("max_backoff", "expected"), [(10.0, [3.0, 3.0]), (0.5, [0.5, 0.5])])
def test_429_waits_as_long_as_retry_after_says_within_the_cap(
    api: SampleApi, max_backoff: float, expected: list[float]
) -> None:
    api.configure(fail_next=2, error_status=429, retry_after=3)
    delays: list[float] = []
    resource = SourceApiResource(base_url=api.url, backoff_seconds=0.01, max_backoff_seconds=max_backoff)

    response = resource.get("/users", sleep=delays.append)

    assert response.status_code == 200
    assert delays == expected
    assert api.stats()["by_status"] == {"429": 2, "200": 1}


def test_a_persistent_503_gives_up_after_max_attempts(api: SampleApi, client: SourceApiResource) -> None:
    api.configure(error_rate=1.0, error_status=503, retry_after=0)

    with pytest.raises(SourceApiError) as raised:
        client.fetch_users()

    assert str(raised.value).startswith(
        f"GET {api.url}/users: gave up after 3 failed attempt(s) (HTTP 503, HTTP 503, HTTP 503); "
        "limits: 3 attempts, 60s in all."
    )
    assert api.stats()["requests"] == 3


@pytest.mark.parametrize(("path", "status"), [("/nope", 404), ("/users?_limit=x", 400)])
def test_other_4xx_fail_at_once(api: SampleApi, client: SourceApiResource, path: str, status: int) -> None:
    with pytest.raises(SourceApiError, match=f"HTTP {status} .*this is not retried"):
        client.get(path)

    assert api.stats()["requests"] == 1


def test_the_total_time_budget_bounds_a_slow_api(api: SampleApi) -> None:
    api.configure(latency_ms=2000)
    resource = SourceApiResource(
        base_url=api.url,
        timeout_seconds=0.2,
        backoff_seconds=0.01,
        max_attempts=100,
        max_total_seconds=1.0,
    )

    with pytest.raises(SourceApiError, match=r"ReadTimeout, .*total time budget used up") as raised:
        resource.fetch_users()

    # The budget, not max_attempts=100, ended the retries: a handful of 0.2 s attempts fit in 1 s.
    assert "1s in all" in str(raised.value)
    assert 2 <= api.stats()["requests"] <= 5


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_api_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    resource = SourceApiResource(base_url=url, backoff_seconds=0.01, max_attempts=2)

    with pytest.raises(SourceApiError) as raised:
        resource.fetch_users()

    assert str(raised.value).startswith(
        f"GET {url}/users: gave up after 2 failed attempt(s) (ConnectionError, ConnectionError)"
    )


def test_a_url_without_scheme_fails_at_once_with_a_hint(api: SampleApi) -> None:
    bare = api.url.removeprefix("http://")
    resource = SourceApiResource(base_url=bare, backoff_seconds=0.01)

    with pytest.raises(SourceApiError, match=r"could not be sent .* not retried") as raised:
        resource.fetch_users()

    assert f"SOURCE_API_URL ({bare})" in str(raised.value)


@pytest.fixture
def cut_short_once() -> Iterator[str]:
    """A raw HTTP server whose first response ends before its Content-Length; then it answers []."""
    server = socket.create_server(("127.0.0.1", 0))
    replies = [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"id"',
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
    ]

    def serve() -> None:
        for reply in replies:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    thread.join(timeout=5)


def test_a_body_cut_short_is_retried(cut_short_once: str) -> None:
    resource = SourceApiResource(base_url=cut_short_once, backoff_seconds=0.01)

    assert resource.get("/users").json() == []


def test_fingerprint_is_stable_while_the_data_does_not_change(client: SourceApiResource) -> None:
    first = client.fingerprint("/posts")

    assert first == "100:100"
    assert client.fingerprint("/posts") == first


@pytest.mark.parametrize(
    ("path", "knobs", "expected"),
    [
        ("/users", {"users": 12}, "12:12"),
        ("/posts", {"users": 12}, "120:120"),
        ("/posts", {"posts_per_user": 3}, "30:30"),
        ("/users", {"mode": "empty"}, "0"),
    ],
)
def test_fingerprint_changes_with_the_size_of_the_collection(
    api: SampleApi, client: SourceApiResource, path: str, knobs: dict[str, object], expected: str
) -> None:
    before = client.fingerprint(path)

    api.configure(**knobs)

    assert client.fingerprint(path) == expected != before


def test_fingerprint_transfers_one_record_per_request(api: SampleApi, client: SourceApiResource) -> None:
    client.fingerprint("/posts", fields=("id", "userId"))

    assert api.stats()["by_path"] == {"/posts": 2}


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("truncated", "the response is not valid JSON"),
        ("wrong_shape", "expected a JSON list of records"),
        ("malformed", "no X-Total-Count header"),
    ],
)
def test_fingerprint_reports_unusable_answers_as_source_api_errors(
    api: SampleApi, client: SourceApiResource, mode: str, problem: str
) -> None:
    api.configure(mode=mode)

    with pytest.raises(SourceApiError, match=problem):
        client.fingerprint("/users")
