"""Remove a team's code location: the inverse of `make new-location`.

    make remove-location NAME=billing_reports
    python -m template_tools.remove_location billing_reports [--root PATH]

Deletes code_locations/<name>/ (its lock and environment with it), its pipeline
(.github/workflows/location-<name>.yml), its entry in workspace.yaml and what derives from
it (`make generate`); no other lock changes. The run history is kept:
runs, events and asset materializations live in Postgres, which this does not touch,
so the UI still shows the location's past runs. Every change is checked before
anything is written, and each removed thing is printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from template_tools import generate, workflows
from template_tools.compose import COMPOSE, drop_location_env
from template_tools.locations import ROOT, WORKSPACE, WorkspaceError, remove_location
from template_tools.new_location import Change, ScaffoldError, apply, read, read_or_none, registered


def plan(root: Path, name: str) -> tuple[list[Change], list[Path]]:
    """The edited and regenerated files, and what to delete: its folder (if still there)."""
    names = registered(root)
    if name not in names:
        raise ScaffoldError(
            f"{WORKSPACE} lists no code location named {name!r} (it lists: {', '.join(names) or 'none'}). "
            "Nothing was changed."
        )
    try:
        sources = {
            WORKSPACE: remove_location(read(root, WORKSPACE), name),
            COMPOSE: drop_location_env(read(root, COMPOSE), name),
        }
        edits = {**sources, **generate.outputs(root, sources)}
    except (*generate.ERRORS, WorkspaceError) as error:
        raise ScaffoldError(f"{error}. Nothing was changed.") from None
    changes = [Change(path, text, created=False) for path, text in edits.items() if text != read_or_none(root, path)]
    gone = [root / "code_locations" / name, root / workflows.path(name)]
    return changes, [path for path in gone if path.exists()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the location's name, as workspace.yaml lists it")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to edit (default: this repo)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        changes, deleted = plan(root, args.name)
    except ScaffoldError as error:
        print(f"remove-location: {error}", file=sys.stderr)
        return 1
    apply(root, changes)
    for path in deleted:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"remove-location: removed code location {args.name}:")
    print(f"  - {WORKSPACE}: its grpc_server entry")
    print(f"  - {COMPOSE}: its service {args.name}, its network and IO volume")
    for change in changes:
        if change.path not in (WORKSPACE, COMPOSE):
            print(f"  - {change.path}: its generated parts")
    pipeline = root / workflows.path(args.name)
    if pipeline in deleted:
        print(f"  - {workflows.path(args.name)}: its pipeline")
    folder = root / "code_locations" / args.name
    print(
        f"  - code_locations/{args.name}/, its lock and environment"
        + ("" if folder in deleted else " (was already gone)")
    )
    print("Kept: its run history, asset materializations and schedule/sensor state in Postgres, and its exports.")
    print(
        "The webserver and the daemon drop it from the workspace by themselves; `make remove-location` then "
        "stops its code server on a running stack (template_tools.deploy retire). Nothing else restarts."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
