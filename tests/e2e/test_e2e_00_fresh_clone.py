"""A fresh clone with no .env: `docker compose up` alone gives a working, secured deployment.

Runs first, on its own stack (the suite's shared one starts after it): a copy of the
tracked files, under the project name compose derives from the folder, with an env
file that sets only the gateway's port (the default 3000 may be taken on this host).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest
import requests

from template_tools.scaffolding import copy_repo
from testkit.stack import Stack, wait_for


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = f"fresh-clone-{secrets.token_hex(3)}"
    clone = copy_repo(tmp_path_factory.mktemp("clone") / project)
    assert not (clone / ".env").exists()
    stack = Stack(project=project, workdir=clone.parent, root=clone, user="admin", password="")
    stack.env_file.write_text(f"GATEWAY_PORT={stack.port}\n")
    try:
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "600", timeout=1800)
        # What the README tells a new user to read for the login.
        log = stack.compose("logs", "--no-log-prefix", "init").stdout
        login = re.search(r"login: user (\S+), password (\S+) \(generated", log)
        assert login and f"Dagster UI: http://127.0.0.1:{stack.port}/" in log, log
        stack.user, stack.password = login.groups()
        yield stack
    finally:
        stack.down()
        images = stack.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={project}-*")
        for image in images.stdout.split():
            stack.docker("image", "rm", image, check=False)


def test_the_login_init_printed_opens_the_ui(bare: Stack) -> None:
    assert bare.user == "admin" and len(bare.password) >= 12
    assert requests.get(f"{bare.url}/server_info", timeout=10).status_code == 401
    assert requests.get(f"{bare.url}/server_info", auth=bare.auth, timeout=10).status_code == 200
    wait_for(bare.all_locations_loaded, timeout=120, interval=0.5, what="every code location loaded")


def test_a_job_runs_in_its_own_container(bare: Stack) -> None:
    """The daemon launches through the socket proxy, which found the socket's group itself."""
    run = bare.wait_for_run(bare.launch("data_extraction_job", "simple_ops"), timeout=180)

    assert run["status"] == "SUCCESS", bare.failure_text(run)


def test_the_generated_secrets_are_only_where_they_are_needed(bare: Stack) -> None:
    # Only the auth service reads the users' hashes; nothing else mounts the UI's secrets.
    for service in ("gateway", "simple_ops", "modular_assets", "webserver", "daemon"):
        mounted = bare.compose("exec", "-T", service, "ls", "/run/ui-secrets", check=False)
        assert mounted.returncode != 0, f"{service} can see the UI's secrets"
    # The Postgres role's password came from the init service, not from .env.
    password = bare.compose("exec", "-T", "webserver", "cat", "/run/dagster-secrets/postgres_password").stdout
    assert len(password.strip()) >= 24
    env = bare.compose("exec", "-T", "webserver", "printenv", "DAGSTER_PG_PASSWORD", check=False).stdout
    assert env.strip() == ""


def test_the_only_published_port_is_the_gateway_s_on_loopback(bare: Stack) -> None:
    published = {
        service["Service"]: publisher
        for service in bare.services()
        for publisher in service.get("Publishers") or []
        if publisher.get("PublishedPort")
    }

    assert list(published) == ["gateway"]
    assert published["gateway"]["URL"] == "127.0.0.1" and published["gateway"]["PublishedPort"] == bare.port


def _make(stack: Stack, target: str, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    """`make <target>` in the clone, against this stack's env file (compose names the project after the folder)."""
    compose = f"COMPOSE=docker compose --env-file {stack.env_file}"
    return subprocess.run(
        ["make", "--no-print-directory", target, compose, *args],
        cwd=stack.root,
        input=answer,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _leftovers(stack: Stack) -> dict[str, list[str]]:
    project = f"label=com.docker.compose.project={stack.project}"
    return {
        "containers": stack.docker("ps", "--all", "--quiet", "--filter", project).stdout.split(),
        "runs": stack.docker(
            "ps", "--all", "--quiet", "--filter", f"label=com.dagster-template.project={stack.project}"
        ).stdout.split(),
        "volumes": [
            name
            for name in stack.docker("volume", "ls", "--quiet").stdout.split()
            if name.startswith(f"{stack.project}_")
        ],
        "networks": stack.docker("network", "ls", "--quiet", "--filter", project).stdout.split(),
    }


def test_make_down_stops_the_runs_and_make_clean_asks_then_removes_everything(bare: Stack) -> None:
    """Last: it takes this module's stack down. A run is in flight (the source API is slowed)."""
    bare.sample_api("POST", "/__admin/config", {"latency_ms": 60000})
    run_id = bare.launch("data_extraction_job", "simple_ops")
    wait_for(lambda: _leftovers(bare)["runs"], timeout=120, interval=0.5, what=f"the container of run {run_id}")

    down = _make(bare, "down")
    assert down.returncode == 0, down.stderr
    left = _leftovers(bare)
    assert left["containers"] == left["runs"] == [] and left["volumes"], left  # the data stays

    refused = _make(bare, "clean", answer="n\n")
    assert refused.returncode != 0 and "nothing was deleted" in refused.stderr
    assert _leftovers(bare)["volumes"] == left["volumes"]

    cleaned = _make(bare, "clean", "FORCE=1")
    assert cleaned.returncode == 0, cleaned.stderr
    assert _leftovers(bare) == {"containers": [], "runs": [], "volumes": [], "networks": []}
