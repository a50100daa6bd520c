"""`make generate` and `make verify`: every file derived from the one list of code locations.

    python -m template_tools.generate            # write them
    python -m template_tools.generate --check    # exit 1, naming each, when one is not current

The sources: workspace.yaml (the code locations and their teams), deploy/settings.yaml
(the stack's settings) and deploy/gateway/nginx.conf.template (the gateway). What they
derive: docker-compose.yml's generated regions and .env.example; deploy/kubernetes'
values regions, NetworkPolicies, claims and gateway ConfigMap; .github/CODEOWNERS'
location lines. A hand edit of a generated part is what `--check` catches.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from template_tools import codeowners, compose, kubernetes, settings
from template_tools.locations import ROOT, WORKSPACE, WorkspaceError, parse_workspace, read_locations
from template_tools.regions import RegionError

ERRORS = (WorkspaceError, RegionError, settings.SettingsError, kubernetes.KubernetesError, codeowners.CodeownersError)


def read(root: Path, path: str, sources: Mapping[str, str] | None = None) -> str:
    """``path``'s text: from ``sources`` when it holds it (a change not yet written), else from disk."""
    if sources and path in sources:
        return sources[path]
    try:
        return (root / path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"{root / path} does not exist: is {root} the repository's root (--root)?") from None


def outputs(root: Path, sources: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every generated file's path (relative to ``root``) and its complete text.

    ``sources`` holds source files as they are about to be written (new-location and
    remove-location compute every change before they write the first one).
    """
    locations = parse_workspace(read(root, WORKSPACE, sources))
    compose_text = compose.render(root, read(root, compose.COMPOSE, sources), locations)
    table = settings.read_table(root)
    defaults = settings.compose_defaults(compose_text)
    return {
        compose.COMPOSE: compose_text,
        settings.ENV_EXAMPLE: settings.env_example(table, defaults, locations),
        **kubernetes.generate(root, locations),
        codeowners.CODEOWNERS: codeowners.render(read(root, codeowners.CODEOWNERS, sources), locations),
    }


def stale(root: Path, files: Mapping[str, str]) -> list[str]:
    """The files whose text on disk differs from ``files``."""
    differing = []
    for path, text in files.items():
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            differing.append(path)
    return differing


def write(root: Path, files: Mapping[str, str], paths: Sequence[str]) -> None:
    """Replace each of ``paths`` atomically with its text in ``files``."""
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(files[path], encoding="utf-8")
        partial.replace(target)


def excerpt(root: Path, path: str, text: str, lines: int = 12) -> str:
    """The first lines of the difference between ``path`` on disk and ``text``."""
    target = root / path
    current = target.read_text(encoding="utf-8").splitlines() if target.is_file() else []
    diff = difflib.unified_diff(current, text.splitlines(), f"{path} (now)", f"{path} (generated)", lineterm="", n=1)
    return "\n".join(list(diff)[:lines])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make generate", description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root (default: this checkout)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        read_locations(root)  # every listed location has its project folder
        files = outputs(root)
    except ERRORS as error:
        print(f"generate: {error}", file=sys.stderr)
        return 1
    differing = stale(root, files)
    if args.check:
        for path in differing:
            print(
                f"verify: {path} is not what `make generate` writes:\n{excerpt(root, path, files[path])}\n",
                file=sys.stderr,
            )
        if differing:
            print(
                "verify: a generated file was edited by hand, or its source changed without `make generate`. "
                "Edit the source (workspace.yaml, deploy/settings.yaml, deploy/gateway/nginx.conf.template, or "
                "the parts outside `# >>> generated` regions), then run `make generate` and commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"verify: the {len(files)} generated files are current")
        return 0
    write(root, files, differing)
    for path in differing:
        print(f"generate: wrote {path}")
    if not differing:
        print(f"generate: the {len(files)} generated files are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
