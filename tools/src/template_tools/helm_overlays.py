"""Helm values overlays: every image from a registry, or one location shipped at a release.

    python -m template_tools.helm_overlays --image-overlay --registry REG [--project P] [--tag T]
                                                   # print a values overlay with other images
    python -m template_tools.helm_overlays --ship-overlay [--live FILE] [--location NAME --tag T]
                                                   # every location's live release, one changed

Helm replaces a list as a whole, so each overlay repeats the whole user deployments list
(as template_tools.kubernetes generates it into values.yaml), with only the images changed
(docs/kubernetes.md, "Shipping one location").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from template_tools.kubernetes import (
    CHART_VERSION,
    DEFAULT_PROJECT,
    DEFAULT_TAG,
    GENERATE,
    VALUES,
    Images,
    KubernetesError,
    generate,
    k8s_name,
)
from template_tools.locations import ROOT, CodeLocation, WorkspaceError, read_locations
from template_tools.regions import RegionError

COMMAND = "python -m template_tools.helm_overlays"


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared values out in full: an overlay is its own file, without the anchors of values.yaml."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def image_overlay(root: Path, images: Images, locations: Sequence[CodeLocation] | None = None) -> str:
    """A values overlay setting every image to ``images``: the instance image and the whole deployments list.

    Helm replaces a list as a whole, so the overlay repeats each deployment (as values.yaml
    resolves it), with only its image changed.
    """
    if locations is None:
        locations = read_locations(root)
    values = yaml.safe_load(generate(root, locations)[VALUES])
    by_name = {k8s_name(location): location for location in locations}
    deployments = []
    for deployment in values["dagster-user-deployments"]["deployments"]:
        location = by_name[deployment["name"]]
        image = {"repository": images.repository(location.name), "tag": images.tag, "pullPolicy": images.pull_policy}
        deployments.append({**deployment, "image": image})
    instance = {"repository": images.repository("dagster"), "tag": images.tag, "pullPolicy": images.pull_policy}
    overlay = {
        "dagsterWebserver": {"image": instance},
        "dagsterDaemon": {"image": instance},
        "dagster-user-deployments": {"deployments": deployments},
    }
    header = (
        f"# Images {images.prefix}-<dagster|location>:{images.tag}, by `{COMMAND} --image-overlay`.\n"
        f"#   helm upgrade --install dagster dagster/dagster --version {CHART_VERSION} -n dagster \\\n"
        "#     -f deploy/kubernetes/values.yaml -f <this file>\n"
        "# Regenerate it after adding a location: it repeats the whole deployments list.\n"
    )
    return header + yaml.dump(overlay, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=1000)


def live_deployments(live: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The user deployments of a release's values (``helm get values -o yaml``), by name."""
    subchart = (live or {}).get("dagster-user-deployments") or {}
    return {d["name"]: dict(d) for d in subchart.get("deployments") or [] if d.get("name") and d.get("image")}


def ship_overlay(
    root: Path,
    live: Mapping[str, Any] | None = None,
    ship: tuple[str, str] | None = None,
    locations: Sequence[CodeLocation] | None = None,
) -> str:
    """The user deployments list with every location at its live release, and ``ship``'s (location, tag) changed.

    Helm replaces a list as a whole, so the overlay repeats every deployment. Shipping
    (``ship`` and ``live``, the release's values from ``helm get values``): the live list as it
    is, with the one location's image tag changed; applied with ``--reuse-values``, only that
    location's Deployment changes. Otherwise (a values.yaml change, a new location): each
    deployment as values.yaml generates it, with its live image where it has one, for
    ``-f values.yaml -f <overlay>``, which would otherwise reset every location to values.yaml's tag.
    """
    if locations is None:
        locations = read_locations(root)
    values = yaml.safe_load(generate(root, locations)[VALUES])
    running = live_deployments(live)
    shipped = None
    if ship is not None:
        location, tag = ship
        found = next((candidate for candidate in locations if candidate.name == location), None)
        if found is None:
            names = ", ".join(candidate.name for candidate in locations)
            raise KubernetesError(f"no code location {location!r} in workspace.yaml (its locations: {names})")
        if not tag or any(c in tag for c in ":/@ "):
            raise KubernetesError(f"{tag!r} is not an image tag")
        shipped = (k8s_name(found), tag)
        if running and shipped[0] not in running:
            raise KubernetesError(
                f"the live values have no user deployment {shipped[0]!r}: install the location first "
                "(helm upgrade with values.yaml, docs/kubernetes.md)"
            )
    if shipped is not None and running:
        listed = list(running.values())
    else:
        listed = [
            {**d, "image": running[d["name"]]["image"] if d["name"] in running else d["image"]}
            for d in values["dagster-user-deployments"]["deployments"]
        ]
    deployments = [
        {**d, "image": {**d["image"], "tag": shipped[1]}} if shipped and d["name"] == shipped[0] else d for d in listed
    ]
    what = f"{ship[0]} at {ship[1]}, every other location" if ship else "Every location"
    header = (
        f"# {what} at its live release, by `{COMMAND} --ship-overlay`:\n"
        f"#   helm upgrade dagster dagster/dagster --version {CHART_VERSION} -n dagster --reuse-values \\\n"
        "#     -f <this file> --wait\n"
    )
    overlay = {"dagster-user-deployments": {"deployments": deployments}}
    return header + yaml.dump(overlay, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=f"Print a values overlay with other images (the generated files: `{GENERATE}`).",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root (default: this checkout)")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--image-overlay", action="store_true", help="every image from a registry, at one tag")
    kind.add_argument("--ship-overlay", action="store_true", help="every location at its live release, one changed")
    parser.add_argument("--registry", help="--image-overlay: the registry (and path) the images were pushed to")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help=f"the compose project (default: {DEFAULT_PROJECT})")
    parser.add_argument("--tag", help=f"the images' tag (default: {DEFAULT_TAG}); --ship-overlay: the release")
    parser.add_argument("--live", type=Path, help="--ship-overlay: the release's values (helm get values -o yaml)")
    parser.add_argument("--location", help="--ship-overlay: the code location to ship at --tag")
    args = parser.parse_args(argv)
    try:
        if args.image_overlay:
            if not args.registry:
                parser.error("--image-overlay needs --registry")
            images = Images(f"{args.registry.rstrip('/')}/{args.project}", args.tag or DEFAULT_TAG)
            sys.stdout.write(image_overlay(args.root.resolve(), images))
        else:
            if bool(args.location) != bool(args.tag):
                parser.error("--ship-overlay takes --location and --tag together (or neither: keep every live release)")
            live = yaml.safe_load(args.live.read_text(encoding="utf-8")) if args.live else None
            ship = (args.location, args.tag) if args.location else None
            sys.stdout.write(ship_overlay(args.root.resolve(), live, ship))
    except (WorkspaceError, KubernetesError, RegionError, OSError, yaml.YAMLError) as error:
        print(f"kubernetes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
