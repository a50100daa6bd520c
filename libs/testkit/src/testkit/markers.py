"""A visible code change: a marker asset appended to a location's definitions.py.

A deploy test or benchmark ships it, then waits until the webserver lists the marker: the
moment the new code is served, whichever server id the webserver happens to hold.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from testkit.stack import Stack

MARKER = '''

@dg.asset(name="{name}")
def _deploy_marker() -> int:
    """Added by a deploy test or benchmark: seen in the UI only once the new release serves."""
    return 1


defs = dg.Definitions.merge(defs, dg.Definitions(assets=[_deploy_marker]))
'''
ASSETS = """query ($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {
  ... on Repository { assetNodes { assetKey { path } } } } }"""


def add_marker(definitions: Path) -> str:
    """Append a new marker asset to ``definitions`` (a location's definitions.py); its name."""
    name = f"deploy_marker_{uuid.uuid4().hex[:8]}"
    definitions.write_text(definitions.read_text() + MARKER.format(name=name))
    return name


def asset_names(stack: Stack, location: str) -> set[str]:
    """The asset keys the webserver lists for ``location`` now."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__"}
    nodes = stack.graphql(ASSETS, {"selector": selector})["repositoryOrError"].get("assetNodes") or []
    return {"/".join(node["assetKey"]["path"]) for node in nodes}
