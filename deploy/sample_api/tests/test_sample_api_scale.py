"""Large sizes: long lists are streamed, and every kind of client reads them whole."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from testkit.sample_api import SampleApi, running_sample_api

if TYPE_CHECKING:
    from testkit.sample_api import Fetch

USERS = 20_000
POSTS_PER_USER = 10

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def large_api() -> Iterator[SampleApi]:
    """A sample-api with 20,000 users and 200,000 posts."""
    with running_sample_api(users=USERS, posts_per_user=POSTS_PER_USER) as api:
        yield api


def test_200k_posts_are_streamed_chunked_and_parse_completely(large_api: SampleApi, fetch: Fetch) -> None:
    reply = fetch(f"{large_api.url}/posts", timeout=60)
    posts = reply.json()

    assert reply.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in reply.headers
    assert reply.headers["X-Total-Count"] == str(USERS * POSTS_PER_USER)
    assert [post["id"] for post in posts] == list(range(1, USERS * POSTS_PER_USER + 1))
    assert posts[-1]["userId"] == USERS


def test_a_keep_alive_connection_survives_a_streamed_response(large_api: SampleApi) -> None:
    connection = http.client.HTTPConnection(urlsplit(large_api.url).netloc, timeout=60)
    try:
        connection.request("GET", "/users")
        users = json.load(connection.getresponse())
        connection.request("GET", f"/users/{USERS}")
        last = json.load(connection.getresponse())
    finally:
        connection.close()

    assert len(users) == USERS
    assert last == users[-1]


def test_an_http_1_0_client_reads_a_streamed_body_until_the_connection_closes(large_api: SampleApi) -> None:
    address = urlsplit(large_api.url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(b"GET /users HTTP/1.0\r\n\r\n")
        response = b"".join(iter(lambda: connection.recv(1 << 16), b""))
    head, _, body = response.partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert len(json.loads(body)) == USERS


def test_requests_reads_a_streamed_body(large_api: SampleApi) -> None:
    requests = pytest.importorskip("requests")
    session = requests.Session()
    session.trust_env = False  # no proxy for 127.0.0.1

    response = session.get(f"{large_api.url}/users/{USERS}/posts", timeout=60)
    streamed = session.get(f"{large_api.url}/users", timeout=60)

    assert [post["id"] for post in response.json()] == list(
        range(USERS * POSTS_PER_USER - 9, USERS * POSTS_PER_USER + 1)
    )
    assert streamed.headers["Transfer-Encoding"] == "chunked"
    assert len(streamed.json()) == USERS


def test_body_faults_work_on_streamed_lists(large_api: SampleApi, fetch: Fetch) -> None:
    large_api.configure(mode="wrong_shape")
    try:
        wrapped = fetch(f"{large_api.url}/users", timeout=60).json()
        large_api.configure(mode="truncated")
        truncated = fetch(f"{large_api.url}/posts", timeout=60)
    finally:
        large_api.reset()

    assert len(wrapped["data"]) == USERS
    assert truncated.headers["Content-Length"] == str(len(truncated.body))
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
