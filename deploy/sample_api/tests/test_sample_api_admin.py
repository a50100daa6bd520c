"""The admin API: reading and changing knobs, validation, reset and statistics."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from sample_api.config import KNOBS, Config
from testkit.sample_api import SampleApi, SampleApiError, running_sample_api

if TYPE_CHECKING:
    from testkit.sample_api import Fetch

ALLOWED_MODES = "one of normal, malformed, truncated, drift_missing, drift_renamed, empty, duplicate_ids, wrong_shape"
DEFAULTS = {
    "users": 10,
    "posts_per_user": 10,
    "seed": 0,
    "error_rate": 0.0,
    "error_status": 503,
    "retry_after": 1,
    "fail_next": 0,
    "latency_ms": 0,
    "mode": "normal",
    "fault_paths": ["/"],
}


def test_every_config_field_is_a_validated_knob() -> None:
    assert [field.name for field in dataclasses.fields(Config)] == list(KNOBS)


def test_config_starts_with_the_defaults(api: SampleApi) -> None:
    assert api.config() == DEFAULTS


def test_configure_merges_the_given_knobs(api: SampleApi) -> None:
    api.configure(mode="empty", fault_paths=["/posts", "/comments"])
    updated = api.configure(error_rate=0.25, latency_ms=5)

    assert updated == {
        **DEFAULTS,
        "mode": "empty",
        "fault_paths": ["/posts", "/comments"],
        "error_rate": 0.25,
        "latency_ms": 5,
    }
    assert api.config() == updated


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"users": -1}, "users must be a whole number >= 0, got -1"),
        ({"posts_per_user": "10"}, "posts_per_user must be a whole number >= 0, got '10'"),
        ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
        ({"error_rate": 1.5}, "error_rate must be a number from 0.0 to 1.0, got 1.5"),
        ({"error_status": 200}, "error_status must be a whole number from 400 to 599, got 200"),
        ({"fail_next": True}, "fail_next must be a whole number >= 0, got True"),
        ({"mode": "chaos"}, f"mode must be {ALLOWED_MODES}, got 'chaos'"),
        (
            {"fault_paths": "/posts"},
            "fault_paths must be a list of path prefixes, each starting with \"/\", got '/posts'",
        ),
        (
            {"fault_paths": ["posts"]},
            "fault_paths must be a list of path prefixes, each starting with \"/\", got ['posts']",
        ),
        ({"colour": "blue"}, "unknown knob 'colour'; known knobs: users, posts_per_user, seed, error_rate"),
        ({"users": 5, "latency_ms": -5}, "latency_ms must be a whole number >= 0, got -5"),
    ],
)
def test_invalid_knobs_are_rejected_with_a_message_and_change_nothing(
    api: SampleApi, knobs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SampleApiError, match="failed with 400") as raised:
        api.configure(**knobs)

    assert message in str(raised.value)
    assert api.config() == DEFAULTS


@pytest.mark.parametrize(
    ("body", "message"), [(b"[1]", "must be a JSON object"), (b"{users: 1", "not valid JSON"), (b"", "not valid JSON")]
)
def test_a_config_body_that_is_not_a_json_object_is_a_400(get: Fetch, body: bytes, message: str) -> None:
    reply = get("/__admin/config", method="POST", body=body)

    assert reply.status == 400
    assert message in reply.json()["error"]


def test_stats_count_data_requests_by_path_and_status(api: SampleApi, get: Fetch) -> None:
    get("/users")
    get("/users?_limit=2")
    get("/posts/1")
    get("/posts/1000")
    get("/health")
    api.config()

    assert api.stats() == {
        "requests": 4,
        "by_path": {"/users": 2, "/posts/1": 1, "/posts/1000": 1},
        "by_status": {"200": 3, "404": 1},
        "faults": 0,
    }


def test_reset_restores_the_start_up_knobs_and_zeroes_the_counters(api: SampleApi, get: Fetch) -> None:
    api.configure(users=2, mode="empty", fail_next=1)
    get("/users")

    assert api.reset() == DEFAULTS
    assert api.stats() == {"requests": 0, "by_path": {}, "by_status": {}, "faults": 0}
    assert len(get("/users").json()) == 10


def test_reset_returns_to_knobs_given_at_start_up(fetch: Fetch) -> None:
    with running_sample_api(users=3, posts_per_user=2, mode="empty", fault_paths=["/posts"], fail_next=1) as api:
        assert fetch(f"{api.url}/posts").status == 503
        assert fetch(f"{api.url}/posts").json() == []
        api.configure(mode="normal", users=5)

        config = api.reset()

        assert config == {
            **DEFAULTS,
            "users": 3,
            "posts_per_user": 2,
            "mode": "empty",
            "fault_paths": ["/posts"],
            "fail_next": 1,
        }
        assert fetch(f"{api.url}/posts").status == 503
        assert len(fetch(f"{api.url}/users").json()) == 3


def test_the_helper_rejects_unknown_knobs_before_starting() -> None:
    with pytest.raises(TypeError, match="unknown sample-api knob 'colour'"), running_sample_api(colour="blue"):
        pass


def test_the_helper_reports_a_server_that_fails_to_start() -> None:
    with (
        pytest.raises(SampleApiError, match="--users must be a whole number >= 0, got '-1'"),
        running_sample_api(users=-1),
    ):
        pass
