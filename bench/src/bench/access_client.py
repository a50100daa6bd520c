"""The client of bench.access, run inside the stack (on the gateway's network, in the auth container).

Sends the same GraphQL requests three ways, interleaved (the order rotates each round), and
prints every latency as JSON: to Dagster's own webserver (``stock``), to the stack's webserver
with an identity signed as the auth service signs it (``checks``), and through the gateway with an
API token (``gateway``: also the login). Also times the auth service's ``/verify`` alone. Only
the standard library, requests and platform_services: what the image holds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from platform_services.access import identity

QUERY = "{ runsOrError(limit: 10) { __typename ... on Runs { results { runId status } } } }"
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on PythonError { message } }
}"""


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main(config: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    key = identity.read_key(Path(os.environ["IDENTITY_KEY_FILE"]))
    admin = identity.Identity(user="bench", via="token", admin=True)
    token = {"Authorization": f"Bearer {config['token']}"}
    urls = {
        "stock": "http://webserver_stock.ui:3000/graphql",
        "checks": "http://webserver.ui:3000/graphql",
        "gateway": "http://gateway:8080/graphql",
    }
    sessions = {path: requests.Session() for path in urls}  # keep-alive, as a browser's

    def post(path: str, body: dict[str, Any], expect: str) -> Callable[[], None]:
        headers = token if path == "gateway" else {}
        if path == "checks":  # signed before the clock starts, as the auth service signs before the webserver
            headers = {identity.HEADER: identity.sign(admin, key)}

        def call() -> None:
            response = sessions[path].post(urls[path], json=body, headers=headers, timeout=30)
            response.raise_for_status()
            if expect not in response.text:
                raise RuntimeError(f"{path}: expected {expect}, got {response.text[:300]}")

        return call

    launch = {"query": LAUNCH, "variables": {"params": config["launch"]}}
    verify = requests.Session()

    def check_token() -> None:
        response = verify.get("http://auth.ui:8081/verify", headers=token, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"/verify answered {response.status_code}: {response.headers}")

    samples: dict[str, dict[str, list[float]]] = {"query": {}, "launch": {}, "verify": {"auth": []}}
    for kind, body, expect, rounds in (
        ("query", {"query": QUERY}, '"Runs"', config["queries"]),
        ("launch", launch, "LaunchRunSuccess", config["launches"]),
    ):
        order = list(urls)
        for path in order:  # a warm-up each: connections open, caches filled
            post(path, body, expect)()
        for round_ in range(rounds):
            for path in order[round_ % 3 :] + order[: round_ % 3]:
                samples[kind].setdefault(path, []).append(timed(post(path, body, expect)))
    check_token()
    samples["verify"]["auth"] = [timed(check_token) for _ in range(config["queries"])]
    return samples


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
