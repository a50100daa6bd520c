"""docker-compose.yml's generated regions: its variable list and each code location's parts.

The file is written by hand except these regions (``# >>> generated: <name>``), which
``make generate`` rewrites from deploy/settings.yaml and workspace.yaml:

* ``settings``: the header's list of variables, with their defaults;
* ``x-locations``: one entry per location, which names its network and its IO volume
  (the shared services merge it into their networks, the file into its volumes);
* ``code-locations``: one code server per location, merging ``*code-location``, with its
  release env file (instance_kit.releases); a location with its own entry in the hand-written ``x-location-env`` map (variables the
  platform gives that location alone) merges that too;
* ``janitor-mounts``: each location's IO volume in the storage janitor, which sweeps it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from template_tools import settings
from template_tools.locations import CodeLocation
from template_tools.regions import replace_region

COMPOSE = settings.COMPOSE
LOCATION_ENV = "x-location-env"
#: The platform's own networks: a location's network (named like it) must not take their name.
PLATFORM_NETWORKS = frozenset({"control", "docker_api", "ui", "monitoring", "alerting", "sample_api", "default"})


def location_env_anchors(text: str) -> set[str]:
    """The locations that have an entry of their own in the ``x-location-env`` block."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{LOCATION_ENV}:")), None)
    if start is None:
        return set()
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "#", "\n")), len(lines))
    try:
        block = yaml.safe_load("".join(lines[start:end]))
    except yaml.YAMLError as error:
        raise settings.SettingsError(f"{COMPOSE}: {LOCATION_ENV} is not valid YAML ({error}); fix it first") from None
    return set(block.get(LOCATION_ENV) or {})


def code_location_service(location: CodeLocation, *, own_env: bool) -> str:
    """A location's code server: the shared ``*code-location`` plus its name, image, network and schedule."""
    name = location.name
    environment = f"[*{name}-env, *code-location-env]" if own_env else "*code-location-env"
    return (
        f"{name}:\n"
        "  <<: *code-location\n"
        f"  image: &{name}-image ${{COMPOSE_PROJECT_NAME}}-{name}:${{DAGSTER_IMAGE_TAG:-local}}\n"
        "  build:\n"
        "    <<: *code-location-build\n"
        f"    args: {{<<: *build-args, LOCATION: {name}}}\n"
        f"  networks: [{name}]\n"
        "  # Which release it runs (make deploy / make rollback / make up write it; instance_kit.releases).\n"
        f'  env_file: [{{path: "./releases/${{COMPOSE_PROJECT_NAME}}/{name}.env", required: false}}]\n'
        "  environment:\n"
        f"    <<: {environment}\n"
        f"    DAGSTER_LOCATION_IMAGE: *{name}-image\n"
        f"    SCHEDULE_CRON: ${{{location.env_prefix}_SCHEDULE_CRON:-${{SCHEDULE_CRON:-0 6 * * *}}}}\n"
    )


def render(root: Path, text: str, locations: Sequence[CodeLocation]) -> str:
    """docker-compose.yml's ``text`` with every generated region rewritten."""
    own_env = location_env_anchors(text)
    unknown = sorted(own_env - {location.name for location in locations})
    if unknown:
        raise settings.SettingsError(
            f"{COMPOSE}: {LOCATION_ENV} has an entry for {', '.join(unknown)}, which workspace.yaml does not list: "
            "remove it (make remove-location does)"
        )
    services = "\n".join(code_location_service(loc, own_env=loc.name in own_env) for loc in locations)
    regions = {
        "x-locations": "".join(f"{location.name}: {{}}\n" for location in locations),
        "code-locations": services,
        "janitor-mounts": "".join(f"- {loc.name}:/opt/dagster/io/{loc.name}\n" for loc in locations),
    }
    for name, body in regions.items():
        text = replace_region(text, name, body, path=COMPOSE)
    # The header lists the variables of the file as it will be, the regions above included.
    table = settings.read_table(root)
    defaults = settings.compose_defaults(text)
    settings.check_table(table, defaults, locations)
    return replace_region(text, "settings", settings.compose_header(table, defaults, locations), path=COMPOSE)


def drop_location_env(text: str, name: str) -> str:
    """``text`` without the location's entry in ``x-location-env`` (and the comment lines just above it)."""
    lines = text.splitlines(keepends=True)
    try:
        block = next(i for i, line in enumerate(lines) if line.startswith(f"{LOCATION_ENV}:"))
    except StopIteration:
        return text
    entry = re.compile(rf"^  {re.escape(name)}:(\s|$)")
    start = next((i for i in range(block + 1, len(lines)) if entry.match(lines[i])), None)
    if start is None:
        return text
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("   ")):
        end += 1
    while end - 1 > start and not lines[end - 1].strip():
        end -= 1
    while start > block + 1 and lines[start - 1].startswith("  #"):
        start -= 1
    return "".join(lines[:start] + lines[end:])
