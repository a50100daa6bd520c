"""Remove a team's code location: the inverse of `make new-location`.

    make remove-location NAME=billing_reports
    python -m template_tools.remove_location billing_reports [--root PATH]

Deletes code_locations/<name>/, its entry in workspace.yaml and its service in
docker-compose.yml (`make remove-location` then runs `uv lock`). The run history
is kept: runs, events and asset materializations live in Postgres, which this
does not touch, so the UI still shows the location's past runs. Every change is
checked before anything is written, and each removed thing is printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from template_tools.locations import ROOT, WORKSPACE, parse_workspace
from template_tools.new_location import (
    CODE_LOCATION_MERGE,
    COMPOSE,
    JANITOR_VOLUMES,
    LOCATIONS_ANCHOR,
    Change,
    ScaffoldError,
    apply,
    janitor_mount,
    read,
    registered,
)
from template_tools.yamltext import AnchorError, compose_services, remove_block, remove_list_items


def plan(root: Path, name: str) -> tuple[list[Change], Path | None]:
    """The edited workspace.yaml and docker-compose.yml, and the folder to delete (None if already gone)."""
    if name not in registered(root):
        raise ScaffoldError(
            f"{WORKSPACE} lists no code location named {name!r} (it lists: {', '.join(registered(root)) or 'none'}). "
            "Nothing was changed."
        )
    if name not in compose_services(read(root, COMPOSE), merging=CODE_LOCATION_MERGE):
        raise ScaffoldError(
            f"{COMPOSE} has no code-location service named {name!r} (one that merges *code-location). "
            "Nothing was changed: restore the service, or remove the location's entry from workspace.yaml by hand."
        )
    try:
        workspace = remove_list_items(
            read(root, WORKSPACE),
            ["load_from"],
            lambda item: [entry.name for entry in parse_workspace(f"load_from:\n{item}")] == [name],
            path=WORKSPACE,
        )
        compose = remove_block(read(root, COMPOSE), ["services", name], path=COMPOSE)
        compose = remove_block(compose, [LOCATIONS_ANCHOR, name], path=COMPOSE)
        compose = remove_list_items(
            compose, JANITOR_VOLUMES, lambda item: item.strip() == janitor_mount(name), path=COMPOSE
        )
    except AnchorError as error:
        raise ScaffoldError(f"{error}. Nothing was changed.") from None
    if name in [entry.name for entry in parse_workspace(workspace)] or name in compose_services(compose):
        raise ScaffoldError(f"could not remove {name!r} cleanly from {WORKSPACE} and {COMPOSE}. Nothing was changed.")
    folder = root / "code_locations" / name
    changes = [Change(WORKSPACE, workspace, created=False), Change(COMPOSE, compose, created=False)]
    return changes, folder if folder.exists() else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the location's name, as workspace.yaml lists it")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to edit (default: this repo)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        changes, folder = plan(root, args.name)
    except ScaffoldError as error:
        print(f"remove-location: {error}", file=sys.stderr)
        return 1
    apply(root, changes)
    if folder is not None:
        shutil.rmtree(folder)
    print(f"remove-location: removed code location {args.name}:")
    print(f"  - {WORKSPACE}: its grpc_server entry")
    print(f"  - {COMPOSE}: its service {args.name}")
    print(f"  - code_locations/{args.name}/" + ("" if folder else " (was already gone)"))
    print("Kept: its run history, asset materializations and schedule/sensor state in Postgres, and its exports.")
    print(
        "Next: `make up` (stops its code server; webserver and daemon reload the workspace); "
        f"its image can go with `docker image rm <project>-{args.name}:local`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
