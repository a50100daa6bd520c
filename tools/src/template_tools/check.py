"""`make check`: validate every code location's definitions with Dagster's own `dg check defs`.

The locations come from workspace.yaml. Each is checked in its own folder and its own
environment (its `dg`, from its own lock), with placeholder values for the variables its
resources read (no source API or Postgres is contacted), and every failure is reported
before the exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from template_tools.locations import ROOT, WorkspaceError, read_locations


def main() -> int:
    try:
        locations = read_locations()
        bins = {location.name: location.bin() for location in locations}
    except WorkspaceError as error:
        print(f"check: {error}", file=sys.stderr)
        return 1
    failed = []
    with tempfile.TemporaryDirectory() as exports:
        env = {**os.environ, "SOURCE_API_URL": "http://127.0.0.1:1", "EXPORTS_DIR": exports}
        for location in locations:
            print(f"check: {location.name}", flush=True)
            result = subprocess.run(
                [str(bins[location.name] / "dg"), "check", "defs"], cwd=ROOT / location.folder, env=env
            )
            if result.returncode != 0:
                failed.append(location.name)
    if failed:
        print(f"check: the definitions of {', '.join(failed)} do not load (see above)", file=sys.stderr)
        return 1
    print(f"check: all {len(locations)} code locations load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
