"""Reload one code location in this container's webserver, as a deploy's identity (template_tools.deploy).

    python -m platform_services.webserver.reload LOCATION --by WHO --team TEAM   # docker exec'd

A deploy runs it once the new release is the only one serving the location's name. Dagster's
own watch picks a new server up within seconds, but a refresh it began while the old release
still answered too may have mixed the two; this one cannot, and the deploy returns only once
the webserver shows the new code. The identity is the deployer's, an editor of the location's
team, signed with the key the webserver checks (so the reload is in the audit log, by them);
the request never leaves the container. Imports no Dagster: it starts in ~0.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from platform_services import healthcheck
from platform_services.access import identity
from platform_services.access.identity import Identity, Role

TIMEOUT_SECONDS = 120.0
MUTATION = """mutation ($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename
  ... on WorkspaceLocationEntry { locationOrLoadError { __typename
    ... on RepositoryLocation { serverId } ... on PythonError { message } } }
  ... on Error { message } } }"""


class ReloadError(Exception):
    """The webserver did not load the location; the message says what it answered."""


def reload(url: str, location: str, who: Identity, key: bytes, timeout: float = TIMEOUT_SECONDS) -> str:
    """Ask the webserver at ``url`` to load ``location`` again; the server id it now holds."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": MUTATION, "variables": {"name": location}}).encode(),
        headers={"Content-Type": "application/json", identity.HEADER: identity.sign(who, key)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ReloadError(f"the webserver at {url} did not answer: {error}") from None
    result = (answer.get("data") or {}).get("reloadRepositoryLocation") or {}
    loaded = result.get("locationOrLoadError") or {}
    if result.get("__typename") != "WorkspaceLocationEntry" or loaded.get("__typename") != "RepositoryLocation":
        problem = loaded.get("message") or result.get("message") or answer.get("errors") or result
        raise ReloadError(f"the webserver did not load {location}: {problem}")
    return str(loaded["serverId"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_services.webserver.reload", description=__doc__)
    parser.add_argument("location")
    parser.add_argument("--by", required=True, help="who deploys, as the audit log names them")
    parser.add_argument("--team", required=True, help="the location's team: the identity is its editor")
    args = parser.parse_args(argv)
    key_file = os.environ.get("IDENTITY_KEY_FILE")
    if not key_file:
        print("reload: IDENTITY_KEY_FILE is not set: run this in the stack's webserver container", file=sys.stderr)
        return 2
    who = Identity(args.by, "deploy", {args.team: Role.EDITOR})
    try:
        server_id = reload(healthcheck.webserver_url(os.environ), args.location, who, identity.read_key(Path(key_file)))
    except (ReloadError, identity.IdentityError, OSError) as error:
        print(f"reload: {error}", file=sys.stderr)
        return 1
    print(server_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
