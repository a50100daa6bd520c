"""Fault injection: body modes, error bursts, error rate, latency and where faults apply."""

from __future__ import annotations

import http.client
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from testkit.sample_api import SampleApi

if TYPE_CHECKING:
    from testkit.sample_api import Fetch


def test_malformed_sends_an_html_page_with_status_200(api: SampleApi, get: Fetch) -> None:
    api.configure(mode="malformed")

    for path in ("/users", "/posts/1"):
        reply = get(path)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        assert reply.body.startswith(b"<!DOCTYPE html>")
        with pytest.raises(json.JSONDecodeError):
            reply.json()


@pytest.mark.parametrize("path", ["/users", "/posts", "/users/2"])
def test_truncated_sends_a_strict_prefix_of_the_real_json(api: SampleApi, get: Fetch, path: str) -> None:
    real = get(path).body
    api.configure(mode="truncated")
    reply = get(path)

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert 0 < len(reply.body) < len(real)
    assert real.startswith(reply.body)
    with pytest.raises(json.JSONDecodeError):
        reply.json()


@pytest.mark.parametrize(("path", "field"), [("/users", "email"), ("/posts", "userId"), ("/users/1/posts", "userId")])
def test_drift_missing_drops_a_required_field_from_every_record(
    api: SampleApi, get: Fetch, path: str, field: str
) -> None:
    real = get(path).json()
    api.configure(mode="drift_missing")
    drifted = get(path).json()

    assert drifted == [{key: value for key, value in record.items() if key != field} for record in real]


@pytest.mark.parametrize(
    ("path", "field", "renamed"), [("/users", "email", "emailAddress"), ("/posts", "userId", "user_id")]
)
def test_drift_renamed_renames_a_required_field_in_every_record(
    api: SampleApi, get: Fetch, path: str, field: str, renamed: str
) -> None:
    real = get(path).json()
    api.configure(mode="drift_renamed")
    drifted = get(path).json()

    assert len(drifted) == len(real)
    for before, after in zip(real, drifted, strict=True):
        assert field not in after
        assert after[renamed] == before[field]
        assert set(after) - {renamed} == set(before) - {field}


def test_drift_applies_to_single_records_too(api: SampleApi, get: Fetch) -> None:
    api.configure(mode="drift_missing")

    assert "email" not in get("/users/4").json()
    assert "userId" not in get("/posts/4").json()


def test_empty_returns_an_empty_list_but_leaves_single_records(api: SampleApi, get: Fetch) -> None:
    user = get("/users/1").body
    api.configure(mode="empty")
    reply = get("/users")

    assert (reply.status, reply.json(), reply.headers["X-Total-Count"]) == (200, [], "0")
    assert get("/posts?userId=1").json() == []
    assert get("/users/1").body == user


def test_duplicate_ids_repeats_a_record(api: SampleApi, get: Fetch) -> None:
    real = get("/posts").json()
    api.configure(mode="duplicate_ids")
    duplicated = get("/posts").json()

    assert len(duplicated) == len(real) + 1
    assert duplicated[0] == duplicated[1] == real[0]
    assert duplicated[1:] == real


def test_wrong_shape_wraps_the_list_in_an_object(api: SampleApi, get: Fetch) -> None:
    real = get("/users").json()
    api.configure(mode="wrong_shape")

    assert get("/users").json() == {"data": real}


def test_fault_paths_limit_faults_to_path_prefixes(api: SampleApi, get: Fetch) -> None:
    api.configure(mode="empty", fault_paths=["/posts"])

    assert get("/posts").json() == []
    assert get("/posts?userId=2").json() == []
    assert len(get("/users").json()) == 10
    assert len(get("/users/2/posts").json()) == 10  # not under the /posts prefix
    assert get("/__admin/stats").json()["faults"] == 2


@pytest.mark.parametrize(("status", "retry_after"), [(429, 7), (503, 0)])
def test_fail_next_fails_a_burst_with_retry_after(api: SampleApi, get: Fetch, status: int, retry_after: int) -> None:
    api.configure(fail_next=3, error_status=status, retry_after=retry_after)

    failures = [get("/users") for _ in range(3)]
    assert [(reply.status, reply.headers["Retry-After"]) for reply in failures] == [(status, str(retry_after))] * 3
    assert failures[0].json() == {"error": "injected fault", "status": status}
    assert get("/users").status == 200
    assert api.config()["fail_next"] == 0
    stats = api.stats()
    assert stats["by_status"] == {str(status): 3, "200": 1}
    assert stats["faults"] == 3


def test_other_error_statuses_have_no_retry_after(api: SampleApi, get: Fetch) -> None:
    api.configure(fail_next=1, error_status=500)
    reply = get("/posts")

    assert reply.status == 500
    assert "Retry-After" not in reply.headers


def test_error_rate_is_reproducible_for_the_same_config(api: SampleApi, get: Fetch) -> None:
    def statuses() -> list[int]:
        return [get("/posts/1").status for _ in range(40)]

    api.configure(error_rate=0.5)
    first = statuses()
    api.configure(error_rate=0.5)
    second = statuses()

    assert first == second
    assert set(first) == {200, 503}
    assert api.stats()["by_status"] == {"200": 2 * first.count(200), "503": 2 * first.count(503)}


@pytest.mark.parametrize(("rate", "expected"), [(0.0, {200}), (1.0, {503})])
def test_error_rate_bounds(api: SampleApi, get: Fetch, rate: float, expected: set[int]) -> None:
    api.configure(error_rate=rate)

    assert {get("/comments?postId=1").status for _ in range(10)} == expected


def test_latency_delays_data_responses_and_provokes_client_timeouts(api: SampleApi, get: Fetch) -> None:
    api.configure(latency_ms=400)
    connection = http.client.HTTPConnection(urlsplit(api.url).netloc, timeout=0.1)
    connection.request("GET", "/users")
    with pytest.raises(TimeoutError):
        connection.getresponse()
    connection.close()

    started = time.monotonic()
    assert get("/users/1").status == 200
    assert time.monotonic() - started >= 0.4


def test_health_and_admin_are_never_faulted(api: SampleApi, get: Fetch) -> None:
    api.configure(fail_next=5, error_rate=1.0, latency_ms=5000, mode="malformed")

    assert get("/health", timeout=2).json() == {"status": "ok", "users": 10, "posts": 100}
    assert api.config()["fail_next"] == 5
    assert api.stats()["requests"] == 0


def test_unknown_paths_are_not_faulted(api: SampleApi, get: Fetch) -> None:
    api.configure(error_rate=1.0, mode="malformed")

    assert get("/todos").status == 404
    assert api.stats() == {"requests": 1, "by_path": {"/todos": 1}, "by_status": {"404": 1}, "faults": 0}
